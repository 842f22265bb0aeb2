/**
 * c. One big download through one TLS connection: direct, spliced through the bare proxy,
 * Portcullis and Squid. c2. The same download through an intercepted tunnel (Portcullis terminates
 * TLS and forwards the body upstream over a new TLS connection), against the same download spliced,
 * with http-mitm-proxy beside it. Best of a few interleaved runs each; CPU per MB from /proc.
 */
import { bulkGet, cpuMs, openTunnel, tlsHandshake } from '../lib.js'
import type { Ctx } from './context.js'

const MB = 1e6

interface Way {
  readonly name: string
  /** Proxy port, or null to go to the origin directly. */
  readonly port: number | null
  readonly servername: string
  readonly ca: string
  /** Whose CPU counts (process tree). */
  readonly pid?: number
}

interface Best {
  mbPerS: number
  cpuMs: number
  bytes: number
}

async function download(ctx: Ctx, w: Way, bytes: number): Promise<number> {
  const { origin } = ctx.env
  const authority = `${w.servername}:${origin.httpsPort}`
  const t = { servername: w.servername, ca: w.ca }
  const sock =
    w.port === null
      ? await tlsHandshake(origin.httpsPort, t)
      : await tlsHandshake(await openTunnel(w.port, authority), t)
  const r = await bulkGet(sock, authority, bytes, 120_000)
  return r.bytes / MB / r.seconds
}

/** Warm each way with a 4 MiB download, then `runs` interleaved rounds of the full size; best MB/s each. */
async function bestOf(ctx: Ctx, ways: readonly Way[], runs: number): Promise<Map<string, Best>> {
  for (const w of ways) await download(ctx, w, 4 << 20)
  const best = new Map(ways.map((w) => [w.name, { mbPerS: 0, cpuMs: 0, bytes: 0 }]))
  for (let round = 0; round < runs; round++)
    for (const w of ways) {
      const b = best.get(w.name) as Best
      const c0 = w.pid ? cpuMs(w.pid) : 0
      b.mbPerS = Math.max(b.mbPerS, await download(ctx, w, ctx.s.bulkBytes))
      b.cpuMs += w.pid ? cpuMs(w.pid) - c0 : 0
      b.bytes += ctx.s.bulkBytes
    }
  return best
}

const cpuUsPerMB = (b: Best | undefined): number | null => (b && b.cpuMs > 0 ? (b.cpuMs * 1000) / (b.bytes / MB) : null)
const sizeLabel = (bytes: number): string => `${bytes / (1 << 20)} MiB`

export const bulkMethod = (ctx: Ctx): string =>
  `**c — bulk.** One TLS connection, \`GET /bulk?bytes=${ctx.s.bulkBytes}\` (the origin streams a preallocated 1 MiB buffer), MB/s = 10⁶ bytes/s from request to last byte; best of ${ctx.s.quick ? 1 : 3} interleaved runs each way after a 4 MiB warm-up; CPU columns are µs per MB. **c2** — the same download to \`mitm.test\` through an intercepted tunnel (Portcullis terminates TLS with its leaf, forwards upstream over verified TLS); its "direct" column is the same download spliced through Portcullis (\`tunnel.test\`), so the ratio is intercepted ÷ spliced.`

export async function runBulk(ctx: Ctx): Promise<void> {
  const { env: e } = ctx
  const tunnel = { servername: 'tunnel.test', ca: e.origin.caPem }
  const ways: Way[] = [
    { name: 'direct', port: null, ...tunnel },
    { name: 'bare', port: e.bare.port, ...tunnel, pid: e.bare.pid },
    { name: 'proxy', port: e.proxy.port, ...tunnel, pid: e.proxy.pid },
    ...(e.squid ? [{ name: 'squid', port: e.squid.port, ...tunnel, pid: e.squid.pid }] : []),
  ]
  const best = await bestOf(ctx, ways, ctx.s.quick ? 1 : 3)
  const get = (n: string): Best | undefined => best.get(n)
  const p = get('proxy') as Best
  const sq = get('squid')
  const vs = sq ? p.mbPerS / sq.mbPerS : null
  ctx.report.add({
    id: 'c',
    scenario: `${sizeLabel(ctx.s.bulkBytes)} download through one tunnel`,
    unit: 'MB/s',
    direct: get('direct')?.mbPerS ?? null,
    bare: get('bare')?.mbPerS ?? null,
    proxy: p.mbPerS,
    proxyCpuUs: cpuUsPerMB(p),
    ratio: p.mbPerS / (get('direct')?.mbPerS ?? NaN),
    squid: sq ? { value: sq.mbPerS, cpuUs: cpuUsPerMB(sq), vs } : null,
    target: '≥ 1.0 × Squid',
    met: vs === null ? null : vs >= 1,
  })
}

export async function runInterceptedBulk(ctx: Ctx): Promise<void> {
  const { env: e } = ctx
  const ways: Way[] = [
    { name: 'spliced', port: e.proxy.port, servername: 'tunnel.test', ca: e.origin.caPem, pid: e.proxy.pid },
    { name: 'intercepted', port: e.proxy.port, servername: 'mitm.test', ca: e.proxyCa, pid: e.proxy.pid },
    ...(e.mitmRef
      ? [{ name: 'mitm-ref', port: e.mitmRef.port, servername: 'mitm.test', ca: e.mitmRef.caPem, pid: e.mitmRef.pid }]
      : []),
  ]
  const best = await bestOf(ctx, ways, ctx.s.quick ? 1 : 3)
  const spliced = best.get('spliced') as Best
  const p = best.get('intercepted') as Best
  const ref = best.get('mitm-ref')
  const ratio = p.mbPerS / spliced.mbPerS
  ctx.report.add({
    id: 'c2',
    scenario: `${sizeLabel(ctx.s.bulkBytes)} through an intercepted tunnel (direct = spliced)`,
    unit: 'MB/s',
    direct: spliced.mbPerS,
    bare: null,
    proxy: p.mbPerS,
    proxyCpuUs: cpuUsPerMB(p),
    ratio,
    target: '≥ 0.5 × spliced',
    met: ratio >= 0.5,
  })
  ctx.report.note(
    `c2: CPU per MB: Portcullis ${cpuUsPerMB(p)?.toFixed(0) ?? '?'} µs intercepted vs ${cpuUsPerMB(spliced)?.toFixed(0) ?? '?'} µs spliced${ref ? `; http-mitm-proxy ${ref.mbPerS.toFixed(0)} MB/s intercepted, ${cpuUsPerMB(ref)?.toFixed(0) ?? '?'} µs per MB (Portcullis ÷ it = ${(p.mbPerS / ref.mbPerS).toFixed(2)})` : ''}.`,
  )
}
