/** f2. Intercepted CONNECT + TLS handshake with the proxy + close: a host whose leaf is cached vs a host seen for the first time. */
import { compare, cpuMs, loadLoop, loopContender, openTunnel, tlsHandshake } from '../lib.js'
import { pick, type Ctx } from './context.js'

export const handshakesMethod = (ctx: Ctx): string =>
  `**f2 — intercept handshakes.** CONNECT + TLS handshake with the proxy + close, 4 at a time; cached = \`mitm.test\` every time, new = \`h<i>.mitm.test\` (${ctx.s.newMitmHosts} pinned names, each used once, matched by \`*.mitm.test\`), each needing a fresh leaf.`

export async function runHandshakes(ctx: Ctx): Promise<void> {
  const { env: e } = ctx
  // Handshake only: no inner request, so nothing goes upstream.
  const handshake = async (host: string): Promise<void> => {
    const s = await tlsHandshake(await openTunnel(e.proxy.port, `${host}:${e.origin.httpsPort}`), {
      servername: host,
      ca: e.proxyCa,
    })
    s.destroy()
  }
  const m = await compare(
    'intercept handshakes',
    [loopContender('cached', () => handshake('mitm.test'), { concurrency: 4, maxOps: 5000, pid: e.proxy.pid })],
    ctx.s,
  )
  const cached = pick(m, 'cached')
  // Every host is new exactly once: no warm-up, and the pinned list bounds the count.
  let next = 0
  const c0 = cpuMs(e.proxy.pid)
  const fresh = await loadLoop(() => handshake(`h${next++}.mitm.test`), {
    concurrency: 4,
    maxOps: ctx.s.newMitmHosts,
    maxMs: 3000,
  })
  const freshCpuUs = ((cpuMs(e.proxy.pid) - c0) * 1000) / Math.max(fresh.ops, 1)
  if (fresh.errors > 0) ctx.report.problem(`f2 new host: ${fresh.errors} errors (first: ${fresh.firstError ?? '?'})`)
  if (fresh.ops === 0) throw new Error(`f2 new host: nothing succeeded (${fresh.firstError ?? '?'})`)
  ctx.report.add({
    id: 'f2',
    scenario: 'intercept handshake: new host (mint) vs cached',
    unit: 'hs/s',
    direct: cached.perSecond,
    bare: null,
    proxy: fresh.perSecond,
    proxyCpuUs: freshCpuUs,
    ratio: fresh.perSecond / cached.perSecond,
    target: '—',
    met: null,
  })
  ctx.report.note(
    `f2: "direct" column = a cached leaf (\`mitm.test\`, ${cached.cpuUs?.toFixed(0) ?? '?'} µs proxy CPU each), "Portcullis" column = first use of h<i>.mitm.test (leaf minted; ${fresh.ops} hosts, ${freshCpuUs.toFixed(0)} µs proxy CPU each).`,
  )
}
