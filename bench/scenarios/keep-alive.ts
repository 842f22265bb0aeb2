/**
 * a + f. Keep-alive HTTPS GETs on 16 connections, in one interleaved set: direct, tunnelled (bare,
 * Portcullis, Portcullis with Redis, Squid) and intercepted (Portcullis, bare, http-mitm-proxy).
 */
import { Pool } from 'undici'
import { compare, LOOPBACK, loopContender, MITM_REF_VERSION, roundRatio, type Contender } from '../lib.js'
import { redisRow } from './redis-row.js'
import { addSquidRow, get, pick, proxyAgent, reportErrors, TIMEOUTS, type Ctx } from './context.js'

export const keepAliveMethod = (ctx: Ctx): string =>
  `**a — CONNECT keep-alive.** ${ctx.s.keepAliveConns} kept-alive HTTPS connections, as many requests in flight, \`GET /\` with a 3-byte body; via proxy = undici \`ProxyAgent\` (one CONNECT per connection, Basic proxy auth, SNI tunnel.test, spliced); direct = undici \`Pool\` to the origin. **f — interception.** The same to \`mitm.test\` (a rule with \`paths\`, so intercepted); the client trusts the Portcullis CA, the proxy verifies the origin with \`upstream.ca_file\`; http-mitm-proxy ${MITM_REF_VERSION} (pinned devDependency, bench/mitm-ref.ts, keep-alive both sides) and the bare proxy intercepting run in the same rounds.`

export async function runKeepAlive(ctx: Ctx, withA: boolean, withF: boolean): Promise<void> {
  const { env: e, s } = ctx
  const n = s.keepAliveConns
  const direct = new Pool(`https://${LOOPBACK}:${e.origin.httpsPort}`, {
    connections: n,
    connect: { ca: e.origin.caPem, servername: 'tunnel.test' },
    ...TIMEOUTS,
  })
  const tunnelOrigin = `https://tunnel.test:${e.origin.httpsPort}`
  const mitmOrigin = `https://mitm.test:${e.origin.httpsPort}`
  const agents = {
    bare: proxyAgent(e.bare.port, 'tunnel.test', e.origin.caPem, n),
    tunnel: proxyAgent(e.proxy.port, 'tunnel.test', e.origin.caPem, n),
    tunnelRedis: proxyAgent(e.proxyRedis.port, 'tunnel.test', e.origin.caPem, n),
    squid: e.squid ? proxyAgent(e.squid.port, 'tunnel.test', e.origin.caPem, n) : null,
    mitm: proxyAgent(e.proxy.port, 'mitm.test', e.proxyCa, n),
    mitmRef: e.mitmRef ? proxyAgent(e.mitmRef.port, 'mitm.test', e.mitmRef.caPem, n) : null,
    bareMitm: e.bare.caPem !== null ? proxyAgent(e.bare.port, 'mitm.test', e.bare.caPem, n) : null,
  }
  const loop = { concurrency: n, maxOps: 100_000 }
  const via = (name: string, d: typeof direct | typeof agents.bare, origin: string, pid: number): Contender =>
    loopContender(name, () => get(d, { origin, path: '/', method: 'GET' }), { ...loop, pid })
  try {
    const contenders: Contender[] = [
      loopContender('direct', () => get(direct, { path: '/', method: 'GET', headers: { host: 'tunnel.test' } }), loop),
    ]
    if (withA) {
      contenders.push(via('bare', agents.bare, tunnelOrigin, e.bare.pid))
      contenders.push(via('tunnel', agents.tunnel, tunnelOrigin, e.proxy.pid))
      contenders.push(via('tunnel+redis', agents.tunnelRedis, tunnelOrigin, e.proxyRedis.pid))
      if (agents.squid && e.squid) contenders.push(via('squid', agents.squid, tunnelOrigin, e.squid.pid))
    }
    if (withF) {
      contenders.push(via('intercept', agents.mitm, mitmOrigin, e.proxy.pid))
      if (agents.bareMitm) contenders.push(via('bare-intercept', agents.bareMitm, mitmOrigin, e.bare.pid))
      if (agents.mitmRef && e.mitmRef) contenders.push(via('mitm-ref', agents.mitmRef, mitmOrigin, e.mitmRef.pid))
    }
    const m = await compare('keep-alive', contenders, s)
    reportErrors(ctx, 'keep-alive', m)
    const d = pick(m, 'direct')
    if (withA) {
      const { proxy } = addSquidRow(ctx, m, {
        id: 'a',
        scenario: 'CONNECT tunnel, keep-alive HTTPS GET',
        unit: 'req/s',
        proxyName: 'tunnel',
      })
      redisRow(ctx, 'a-r', 'CONNECT keep-alive: Redis sink on ÷ off', proxy, pick(m, 'tunnel+redis'))
    }
    if (withF) {
      const p = pick(m, 'intercept')
      const ratio = roundRatio(p.rounds, d.rounds)
      const ref = m.get('mitm-ref')
      const vsRef = ref ? roundRatio(p.rounds, ref.rounds) : null
      const bareF = m.get('bare-intercept')
      ctx.report.add({
        id: 'f',
        scenario: 'intercepted (MITM), keep-alive HTTPS GET',
        unit: 'req/s',
        direct: d.perSecond,
        bare: bareF?.perSecond ?? null,
        proxy: p.perSecond,
        proxyCpuUs: p.cpuUs,
        ratio,
        target: '≥ 0.25 direct, ≥ 1.5 × http-mitm-proxy',
        met: ratio >= 0.25 && (vsRef === null || vsRef >= 1.5),
      })
      if (ref)
        ctx.report.note(
          `f: http-mitm-proxy ${MITM_REF_VERSION} ${ref.perSecond.toFixed(0)} req/s (${ref.cpuUs?.toFixed(0) ?? '?'} µs CPU/op); Portcullis ÷ http-mitm-proxy = ${vsRef?.toFixed(2) ?? '?'}; Portcullis ${p.cpuUs?.toFixed(0) ?? '?'} µs CPU/op.`,
        )
      const t = m.get('tunnel')
      if (t)
        ctx.report.note(
          `f: intercepted ÷ tunnelled keep-alive = ${(p.perSecond / t.perSecond).toFixed(2)}; p50 ${p.p50Ms.toFixed(1)} ms intercepted vs ${t.p50Ms.toFixed(1)} ms tunnelled, ${n} in flight.`,
        )
    }
  } finally {
    await Promise.all([direct.close(), ...Object.values(agents).map((a) => a?.close())])
  }
}
