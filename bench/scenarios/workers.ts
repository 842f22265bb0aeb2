/**
 * w. One worker vs two (`workers: 2`, node:cluster), both with the Redis sink and shared limits on
 * (more than one worker needs Redis): plain-HTTP keep-alive through wrk, and intercepted keep-alive.
 * The "direct" column is the 1-worker figure, the ratio 2 workers ÷ 1.
 */
import { readFileSync } from 'node:fs'
import { compare, loopContender, roundRatio, type Outcome } from '../lib.js'
import { plainContender } from './plain.js'
import { get, pick, proxyAgent, reportErrors, type Ctx } from './context.js'

export const workersMethod = (ctx: Ctx): string =>
  `**w — workers.** The Redis-on Portcullis (1 worker) and the same config with \`workers: 2\` (a cluster primary and two workers on one port, round-robin), interleaved: plain-HTTP keep-alive with wrk as in (d), and intercepted keep-alive with undici as in (f), ${ctx.s.keepAliveConns} connections each. CPU / op counts the primary and both workers.`

function row(ctx: Ctx, id: string, scenario: string, one: Outcome, two: Outcome): void {
  ctx.report.add({
    id,
    scenario,
    unit: 'req/s',
    direct: one.perSecond,
    bare: null,
    proxy: two.perSecond,
    proxyCpuUs: two.cpuUs,
    ratio: roundRatio(two.rounds, one.rounds),
    target: '—',
    met: null,
  })
}

export async function runWorkers(ctx: Ctx): Promise<void> {
  const { env: e, s } = ctx
  const two = e.proxyWorkers
  if (!two) throw new Error('w: the 2-worker proxy was not started')
  const plain = await compare(
    'workers plain HTTP',
    [
      plainContender(ctx, '1 worker', e.proxyRedis.port, e.proxyRedis.pid),
      plainContender(ctx, '2 workers', two.port, two.pid),
    ],
    s,
  )
  reportErrors(ctx, 'w', plain)
  row(ctx, 'w', 'plain-HTTP keep-alive: 2 workers ÷ 1', pick(plain, '1 worker'), pick(plain, '2 workers'))
  const origin = `https://mitm.test:${e.origin.httpsPort}`
  const agents = [e.proxyRedis, two].map((p) =>
    proxyAgent(p.port, 'mitm.test', readFileSync(p.caCertFile, 'utf8'), s.keepAliveConns),
  )
  try {
    const loop = { concurrency: s.keepAliveConns, maxOps: 100_000 }
    const [a1, a2] = agents as [(typeof agents)[0], (typeof agents)[0]]
    const mitm = await compare(
      'workers intercept',
      [
        loopContender('1 worker', () => get(a1, { origin, path: '/', method: 'GET' }), {
          ...loop,
          pid: e.proxyRedis.pid,
        }),
        loopContender('2 workers', () => get(a2, { origin, path: '/', method: 'GET' }), { ...loop, pid: two.pid }),
      ],
      s,
    )
    reportErrors(ctx, 'w-f', mitm)
    row(ctx, 'w-f', 'intercepted keep-alive: 2 workers ÷ 1', pick(mitm, '1 worker'), pick(mitm, '2 workers'))
    const [p1, p2, m1, m2] = [plain, plain, mitm, mitm].map((m, i) => pick(m, i % 2 === 0 ? '1 worker' : '2 workers'))
    ctx.report.note(
      `w: CPU per request, 1 vs 2 workers (all processes): plain ${p1?.cpuUs?.toFixed(0) ?? '?'} vs ${p2?.cpuUs?.toFixed(0) ?? '?'} µs, intercepted ${m1?.cpuUs?.toFixed(0) ?? '?'} vs ${m2?.cpuUs?.toFixed(0) ?? '?'} µs. On a 2-core machine the load generator and the origin run on the same cores, so a second worker can only take CPU time from them: the gain is bounded by the idle CPU left with one worker, and round-robin adds an accept hand-off through the primary per connection (keep-alive connections pay it once).`,
    )
  } finally {
    await Promise.all(agents.map((a) => a.close()))
  }
}
