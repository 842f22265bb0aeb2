/**
 * The arithmetic of sharing one request budget between instances. PURE: no clock, no state, no I/O.
 * The shared ledger (ledger.ts) decides with these functions on this instance; the sync script
 * (sync-script.ts) applies `grantOf` atomically in Redis, and test/unit/limits/share.test.ts holds
 * the Lua to the same table of cases against a real redis-server.
 */
import { MS_PER_MINUTE } from './token-bucket.js'
import { previousWeight } from './windows.js'

/**
 * Tokens an instance keeps for an agent with no recent requests there but a count somewhere this
 * minute: requests that arrive now and then are admitted at once, and a burst starts before the next
 * sync brings a full share. A tenth of one instance's share (at least one): what idle instances hold
 * is what the busy one cannot use until they give it back.
 */
export function reserveOf(rpm: number, instances: number): number {
  return Math.max(1, Math.ceil(rpm / (10 * instances)))
}

/**
 * What an instance may admit on its own before its first report of the minute: its share of what
 * is left, rounded down (n rounded-up shares would add up to more than the budget).
 */
export function coldShare(rpm: number, used: number, previous: number, instances: number): number {
  return Math.floor(Math.max(0, rpm - used - previous) / instances)
}

/**
 * What Redis counts as used for a live instance that has not reported the agent this minute (it
 * may be admitting its cold share right now). Never less than any cold share with as many or more
 * instances, so no token is handed out twice.
 */
export function placeholderShare(rpm: number, instances: number): number {
  return Math.ceil(rpm / Math.max(1, instances))
}

/**
 * The cold share of an agent learned from Redis is bounded by the smallest placeholder Redis held
 * for this instance this minute: rpm over the most instances seen live, rounded down.
 */
export function learnedShareCap(rpm: number, mostInstances: number): number {
  return Math.floor(rpm / mostInstances)
}

export interface HoldingFacts {
  /** Tokens held here now. */
  readonly held: number
  readonly rpm: number
  /** Requests used or held by every instance this minute (last known), plus those not yet reported. */
  readonly counted: number
  /** The previous minute's requests, weighted (how much of it still lies within the last 60 s). */
  readonly previousWeighted: number
  readonly instances: number
  /** Requests for the agent arrived here within the last second. */
  readonly demand: boolean
  /** Sharing is off, the agent has no rpm, or the instance is stopping: hold nothing. */
  readonly holdNone: boolean
}

/**
 * How many tokens to give back and to ask for at a report. The target is a fair share of what
 * this instance holds plus what nobody has claimed, ceil((held + unclaimed) / instances); without
 * demand here, no more than a reserve.
 */
export function rebalance(f: HoldingFacts): { readonly returned: number; readonly want: number } {
  const unclaimed = Math.max(0, f.rpm - f.counted - f.previousWeighted)
  const fair = Math.ceil((f.held + unclaimed) / f.instances)
  // Never more than a share of the budget: after a reload lowers it, what is held may exceed that.
  const share = Math.ceil(f.rpm / f.instances)
  const target = f.holdNone ? 0 : Math.min(share, f.demand ? fair : Math.min(fair, reserveOf(f.rpm, f.instances)))
  return { returned: Math.max(0, f.held - target), want: Math.max(0, target - f.held) }
}

export interface RefusalFacts {
  readonly rpm: number
  readonly minute: number
  readonly now: number
  /** Requests used or held this minute, every instance as known here, plus this instance's unreported ones. */
  readonly counted: number
  /** The previous minute's requests, every instance (unweighted). */
  readonly previous: number
}

/**
 * Retry-After for a request refused for want of tokens: a second while the sliding window has
 * budget left (the next sync brings a share); else when it has room again. That is as the previous
 * minute's weight fades, when this minute alone leaves room; else into the next minute, where this
 * minute's requests still weigh, fading (the window counts the previous minute in proportion to how
 * much of it lies within the last 60 s): a budget of 10 spent within 10:00 frees one request at
 * 10:01:06, when those ten weigh nine, not at 10:01:00.
 */
export function refusalRetryAfterS(f: RefusalFacts): number {
  const used = f.counted + f.previous * previousWeight(f.minute, f.now)
  if (used + 1 <= f.rpm) return 1
  const elapsed = f.now - f.minute * MS_PER_MINUTE
  const room = f.rpm - 1 - f.counted
  if (room >= 0 && f.previous > 0) {
    // Within this minute: the previous minute's weight fades until room is left.
    const fadedAt = (1 - room / f.previous) * MS_PER_MINUTE
    return Math.max(1, Math.ceil((fadedAt - elapsed) / 1000))
  }
  // The next minute starts with nothing of its own; this minute's count weighs 1 and fades.
  const fadeIntoNext = f.counted > f.rpm - 1 ? (1 - (f.rpm - 1) / f.counted) * MS_PER_MINUTE : 0
  return Math.max(1, Math.ceil((MS_PER_MINUTE - elapsed + fadeIntoNext) / 1000))
}

export interface GrantFacts {
  readonly want: number
  readonly rpm: number
  /** This minute's count in Redis after the reporting instance's own requests and returns. */
  readonly counted: number
  /** The previous minute's count in Redis. */
  readonly previous: number
  /** How much of the previous minute still lies within the last 60 s, in thousandths. */
  readonly previousWeightMilli: number
  /** Live instances (at least 1). */
  readonly instances: number
  /** Live instances that have not reported the agent this minute. */
  readonly unreported: number
}

/**
 * Tokens Redis grants a report: what it asks for, no more than is left. Left is the budget minus
 * this minute's count, the previous minute's weighted, and a placeholder share for every live
 * instance that has not reported the agent yet. (Computed in Redis by sync-script.ts's Lua.)
 */
export function grantOf(f: GrantFacts): number {
  if (!(f.want > 0 && f.rpm > 0)) return 0
  const n = Math.max(1, f.instances)
  const left =
    f.rpm -
    f.counted -
    Math.ceil((f.previous * f.previousWeightMilli) / 1000) -
    f.unreported * placeholderShare(f.rpm, n)
  return left > 0 ? Math.min(f.want, left) : 0
}
