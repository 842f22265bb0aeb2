import { grantOf } from '../../src/limits/share.js'
import type { UsageReport, UsageTotals } from '../../src/limits/shared-usage.js'
import type { LimitSyncArgs, LimitSyncReply } from '../../src/limits/sync-script.js'
import type { KeysBefore } from '../fixtures/limit-sync-cases.js'

/**
 * What the limit sync script does to an agent's keys, in memory (share.ts `grantOf` plus the
 * counting around it). test/integration/redis-limit-script.test.ts holds the Lua to the same
 * table this model passes, so simulations may stand it in for Redis.
 */
export function applyReport(
  keys: KeysBefore,
  args: LimitSyncArgs,
): { readonly after: Required<KeysBefore>; readonly reply: LimitSyncReply } {
  const reporters = new Set(keys.reporters ?? [])
  reporters.add(args.instance)
  const counted = (keys.requests ?? 0) + args.requests - args.returned
  const previous = keys.previousRequests ?? 0
  const granted = grantOf({
    want: args.want,
    rpm: args.rpm,
    counted,
    previous,
    previousWeightMilli: args.previousWeightMilli,
    instances: args.liveInstances.length,
    unreported: args.liveInstances.filter((id) => !reporters.has(id)).length,
  })
  const bytes = (keys.bytes ?? 0) + Math.max(0, args.bytes)
  return {
    after: { requests: counted + granted, previousRequests: previous, reporters: [...reporters], bytes },
    reply: { granted, requests: counted + granted, bytes, previousRequests: previous },
  }
}

/** A shared store of many agents' keys, as Redis holds them, with the sync's "active agents" sets. */
export interface LimitBackend {
  /** One sync of one instance: apply each report in order, as the pipeline does; the totals to settle. */
  sync(instance: string, live: readonly string[], reports: readonly UsageReport[]): UsageTotals[]
  /**
   * Agents with requests or wants this minute or the previous one, and when each was last in use, as
   * announced (what an instance learns); an agent in both minutes is listed twice, as Redis has it.
   */
  active(minute: number): Array<{ readonly agentId: string; readonly usedMs: number }>
  /** This minute's count of an agent (used and held, every instance). */
  count(agentId: string, minute: number): number
}

export function createLimitBackend(): LimitBackend {
  const minutes = new Map<string, { requests: number; reporters: string[] }>()
  const days = new Map<string, number>()
  /** Per minute, each announced agent's score (ZADD: the last announcement replaces it). */
  const activeSets = new Map<number, Map<string, number>>()
  const key = (agentId: string, minute: number): string => `${agentId}:${minute}`
  return {
    sync(instance, live, reports) {
      return reports.map((r) => {
        const cur = minutes.get(key(r.agentId, r.minute))
        const { after, reply } = applyReport(
          {
            requests: cur?.requests ?? 0,
            previousRequests: minutes.get(key(r.agentId, r.minute - 1))?.requests ?? 0,
            reporters: cur?.reporters ?? [],
            bytes: days.get(`${r.agentId}:${r.day}`) ?? 0,
          },
          {
            instance,
            requests: r.requests,
            returned: r.returned,
            want: r.want,
            rpm: r.rpm,
            previousWeightMilli: r.previousWeight,
            requestTtlS: 120,
            bytes: r.bytes,
            bytesTtlS: 172_800,
            liveInstances: live,
          },
        )
        minutes.set(key(r.agentId, r.minute), { requests: after.requests, reporters: [...after.reporters] })
        days.set(`${r.agentId}:${r.day}`, after.bytes)
        if (r.want > 0 || r.requests > 0) {
          const set = activeSets.get(r.minute) ?? new Map<string, number>()
          set.set(r.agentId, r.usedMs)
          activeSets.set(r.minute, set)
        }
        return {
          agentId: r.agentId,
          minute: r.minute,
          requests: reply.requests,
          previousRequests: reply.previousRequests,
          granted: reply.granted,
          day: r.day,
          bytes: reply.bytes,
        }
      })
    },
    active(minute) {
      return [minute, minute - 1].flatMap((m) =>
        [...(activeSets.get(m) ?? [])].map(([agentId, usedMs]) => ({ agentId, usedMs })),
      )
    },
    count: (agentId, minute) => minutes.get(key(agentId, minute))?.requests ?? 0,
  }
}
