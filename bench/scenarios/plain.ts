/**
 * d. Plain HTTP: absolute-form keep-alive GETs through each proxy vs the origin directly, driven by
 * wrk (a C load generator in its own process, as an operator would measure), with its latency
 * percentiles.
 */
import { compare, LOOPBACK, PROXY_AUTH, wrkContender, wrkProxyScript, type Contender } from '../lib.js'
import { redisRow } from './redis-row.js'
import { addSquidRow, pick, reportErrors, type Ctx } from './context.js'

export const plainMethod = (ctx: Ctx): string =>
  `**d — plain HTTP forward.** wrk (1 thread, ${ctx.s.keepAliveConns} keep-alive connections, \`--latency\`) sending absolute-form \`GET http://plain.test:<port>/\` with \`Proxy-Authorization\` (a Lua script) to each proxy, vs wrk against the origin; rounds of whole seconds (wrk's unit). Latency rows are wrk's percentiles, the median over rounds (${ctx.s.keepAliveConns} in flight, so they include queueing); their ratio is Portcullis ÷ direct, and the Squid cell compares Portcullis ÷ Squid.`

/** wrk through the proxy on `port` (absolute-form requests), or straight to the origin when port is null. */
export function plainContender(ctx: Ctx, name: string, port: number | null, pid?: number): Contender {
  const host = `plain.test:${ctx.env.origin.httpPort}`
  const connections = ctx.s.keepAliveConns
  if (port === null)
    return wrkContender(name, {
      url: `http://${LOOPBACK}:${ctx.env.origin.httpPort}/`,
      connections,
      headers: { Host: host },
    })
  const script = wrkProxyScript(`http://${host}/`, { Host: host, 'Proxy-Authorization': PROXY_AUTH })
  return wrkContender(name, { url: `http://${LOOPBACK}:${port}/`, connections, script }, pid)
}

export async function runPlain(ctx: Ctx): Promise<void> {
  const { env: e } = ctx
  const m = await compare(
    'plain HTTP',
    [
      plainContender(ctx, 'direct', null),
      plainContender(ctx, 'bare', e.bare.port, e.bare.pid),
      plainContender(ctx, 'proxy', e.proxy.port, e.proxy.pid),
      plainContender(ctx, 'proxy+redis', e.proxyRedis.port, e.proxyRedis.pid),
      ...(e.squid ? [plainContender(ctx, 'squid', e.squid.port, e.squid.pid)] : []),
    ],
    ctx.s,
  )
  reportErrors(ctx, 'plain HTTP', m)
  const {
    direct: d,
    bare: b,
    proxy: p,
    squid: q,
  } = addSquidRow(ctx, m, { id: 'd', scenario: 'plain-HTTP forward, keep-alive GET (wrk)', unit: 'req/s' })
  for (const pct of [50, 99] as const) {
    const key = pct === 50 ? 'p50Ms' : 'p99Ms'
    const vs = q ? p[key] / q[key] : null
    ctx.report.add({
      id: `d${pct}`,
      scenario: `  latency p${pct} (lower is better)`,
      unit: 'ms',
      direct: d[key],
      bare: b[key],
      proxy: p[key],
      proxyCpuUs: null,
      ratio: p[key] / d[key],
      squid: q ? { value: q[key], cpuUs: null, vs } : null,
      target: pct === 99 ? '≤ 1.5 × Squid' : '—',
      met: pct === 99 && vs !== null ? vs <= 1.5 : null,
    })
  }
  // Not a target (the Redis target is for tunnels, row a-r): two records a request make this the sink's worst case.
  redisRow(ctx, 'd-r', 'plain-HTTP forward (2 records/req): Redis on ÷ off', p, pick(m, 'proxy+redis'), false)
}
