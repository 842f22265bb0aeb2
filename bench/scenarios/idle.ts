/** e. Proxy RSS per idle tunnel: a fresh proxy process, then many tunnels with TLS up and no traffic. */
import { execFileSync } from 'node:child_process'
import type { Socket } from 'node:net'
import {
  openTunnel,
  rssKiB,
  sleep,
  squidBinary,
  startBareProxy,
  startProxy,
  startSquid,
  tlsHandshake,
  type OriginProc,
} from '../lib.js'
import type { Ctx } from './context.js'

export const idleMethod = (ctx: Ctx): string =>
  `**e — idle tunnels.** A fresh proxy process (Portcullis: three, the median reported); 200 tunnels opened and closed as warm-up, 1.5 s settle, VmRSS; then ${ctx.s.idleTunnels} tunnels opened (CONNECT + TLS handshake through the tunnel, then no traffic) 32 at a time, 1.5 s settle, VmRSS; (after − before) ÷ tunnels. The same for the bare proxy and Squid.`

const PROXY_RUNS = 3

function ulimit(flag: '-Sn' | '-Hn'): number {
  try {
    return Number(execFileSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim())
  } catch {
    return NaN
  }
}

interface IdleRss {
  readonly before: number
  readonly after: number
  readonly count: number
  readonly openSeconds: number
  readonly failures: number
  readonly firstError: string
}

/** Open n tunnels (CONNECT + TLS handshake through them, then silence) via the proxy on port; its VmRSS before and after. */
async function idleRss(port: number, pid: number, n: number, origin: OriginProc): Promise<IdleRss> {
  const t = { servername: 'tunnel.test', ca: origin.caPem }
  const authority = `tunnel.test:${origin.httpsPort}`
  const open: Socket[] = []
  try {
    // Warm-up: the same path 200 times, then closed, so the baseline includes JIT code and pools.
    for (let round = 0; round < 4; round++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, async () => tlsHandshake(await openTunnel(port, authority), t)),
      )
      for (const s of batch) s.destroy()
    }
    await sleep(1500)
    const before = rssKiB(pid)
    const deadline = Date.now() + 60_000
    let failures = 0
    let started = 0
    let firstError = ''
    const opener = async (): Promise<void> => {
      while (started < n && Date.now() < deadline && failures < 20) {
        started++
        try {
          const s = await tlsHandshake(await openTunnel(port, authority), t)
          s.on('error', () => s.destroy())
          open.push(s)
        } catch (err) {
          failures++
          firstError ||= String(err)
        }
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: 32 }, opener))
    const openSeconds = (performance.now() - t0) / 1000
    await sleep(1500)
    return { before, after: rssKiB(pid), count: open.length, openSeconds, failures, firstError }
  } finally {
    for (const s of open) s.destroy()
  }
}

export async function runIdle(ctx: Ctx): Promise<void> {
  const { origin, root, out } = ctx.env
  const soft = ulimit('-Sn')
  const hard = ulimit('-Hn')
  // Node raises its own soft limit to the hard limit at start-up; the proxy needs 2 fds per tunnel, this process 1.
  const fdBudget = Math.min(Number.isFinite(hard) ? hard : soft, Number.isFinite(soft) ? Math.max(soft, hard) : hard)
  const n = Math.min(ctx.s.idleTunnels, Math.floor((fdBudget - 256) / 2))
  if (n < ctx.s.idleTunnels)
    ctx.report.problem(`e: ulimit -n (soft ${soft}, hard ${hard}) allows only ${n} tunnels, not ${ctx.s.idleTunnels}`)
  // RSS moves with when the GC last ran (nothing forces it), by several KiB per tunnel between runs:
  // Portcullis is measured in PROXY_RUNS fresh processes and the median run is reported.
  const runs: IdleRss[] = []
  for (let i = 0; i < PROXY_RUNS; i++) {
    const proxy = await startProxy(root, out, `proxy-idle-${i}`, { origin })
    try {
      runs.push(await idleRss(proxy.port, proxy.pid, n, origin))
    } finally {
      await proxy.stop()
    }
  }
  const per = (r: IdleRss): number => (r.after - r.before) / Math.max(1, r.count)
  runs.sort((x, y) => per(x) - per(y))
  const pc = runs[Math.floor(runs.length / 2)] as IdleRss
  const bare = await startBareProxy()
  let floor: IdleRss
  try {
    floor = await idleRss(bare.port, bare.pid, n, origin)
  } finally {
    await bare.stop()
  }
  const binary = squidBinary()
  let squid: IdleRss | null = null
  if (binary) {
    const sq = await startSquid(binary, ['tunnel.test'], origin.httpPort, origin.httpsPort)
    try {
      squid = await idleRss(sq.port, sq.pid, n, origin)
    } finally {
      await sq.stop()
    }
  }
  const results = [['Portcullis', pc], ['bare proxy', floor], ...(squid ? [['Squid', squid] as const] : [])] as const
  for (const [who, r] of results)
    if (r.failures > 0) ctx.report.problem(`e ${who}: ${r.failures} tunnel opens failed (${r.firstError})`)
  const perTunnel = (pc.after - pc.before) / pc.count
  const squidPer = squid ? (squid.after - squid.before) / squid.count : null
  ctx.report.add({
    id: 'e',
    scenario: `proxy RSS per idle TLS tunnel (${pc.count} open)`,
    unit: 'KiB',
    direct: null,
    bare: (floor.after - floor.before) / floor.count,
    proxy: perTunnel,
    proxyCpuUs: null,
    ratio: null,
    squid: squidPer === null ? null : { value: squidPer, cpuUs: null, vs: perTunnel / squidPer },
    target: '≤ 8 KiB',
    met: perTunnel <= 8,
  })
  ctx.report.note(
    `e: Portcullis per idle tunnel over ${runs.length} fresh processes: ${runs.map((r) => per(r).toFixed(1)).join(', ')} KiB (median reported). Portcullis VmRSS ${(pc.before / 1024).toFixed(1)} MiB idle (after warm-up) → ${(pc.after / 1024).toFixed(1)} MiB with ${pc.count} idle tunnels (opened in ${pc.openSeconds.toFixed(1)} s, 32 at a time); bare proxy ${(floor.before / 1024).toFixed(1)} → ${(floor.after / 1024).toFixed(1)} MiB. No GC is forced, so garbage from the handshakes still counts; ulimit -n soft ${soft}, hard ${hard}.`,
  )
}
