import { roundRatio, type Outcome } from '../lib.js'
import type { Ctx } from './context.js'

/** A Redis-on row: the "direct" column is Portcullis without Redis, the proxy column with it; target ≤ 5 % loss (tunnels). */
export function redisRow(ctx: Ctx, id: string, scenario: string, off: Outcome, on: Outcome, targeted = true): void {
  const ratio = roundRatio(on.rounds, off.rounds)
  ctx.report.add({
    id,
    scenario,
    unit: 'req/s',
    direct: off.perSecond,
    bare: null,
    proxy: on.perSecond,
    proxyCpuUs: on.cpuUs,
    ratio,
    target: targeted ? '≥ 0.95' : '—',
    met: targeted ? ratio >= 0.95 : null,
  })
  ctx.report.note(
    `${id}: Portcullis CPU ${off.cpuUs?.toFixed(0) ?? '?'} µs/op without Redis vs ${on.cpuUs?.toFixed(0) ?? '?'} µs/op with the Redis sink (and shared limits) on.`,
  )
}
