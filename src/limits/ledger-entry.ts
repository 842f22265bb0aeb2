/**
 * One agent's entry in the shared ledger, split by concern: the windows, the request and byte counts
 * of those windows by where they stand (unreported, in flight, known globally), the tokens held
 * here, and activity. Moving to new windows (`rollEntry`) is the one rule that touches them all.
 */
import { minuteOf, utcDay } from './windows.js'

/** The fixed windows the counts below hold for. */
export interface Windows {
  minute: number
  day: number
}

/** Requests of `minute`. */
export interface RequestCounts {
  /** Admitted here on its own (not from held tokens) and not yet reported. */
  unsynced: number
  /** Of those, the ones in the report in flight (they still count until settled). */
  inflight: number
  /** Used or held in `minute`, every instance (from the last settle). */
  global: number
  /** Of the previous minute, all instances (from the sync; else this instance's own count). */
  previous: number
}

/** Bytes of `day`. */
export interface ByteCounts {
  /** Moved through this instance (what local limits count). */
  local: number
  unsynced: number
  inflight: number
  global: number
}

/** Tokens this instance holds for the agent, and where it stands in the minute's reporting. */
export interface Tokens {
  /** Held for `minute` (shared mode). */
  held: number
  /** Held tokens past the share of a lowered budget (a reload): to be given back at the next report. */
  excess: number
  /** Admitted on its own share while cold. */
  coldUsed: number
  /** Where the last admission came from, for refunds. */
  lastFromHeld: boolean
  /** The minute of this instance's last report for the agent; before it the agent is "cold" here. */
  reportedMinute: number
  /**
   * The minute this instance learned of the agent from Redis (it has a count elsewhere). A learned
   * agent is never cold: what is left of its budget is unknown here, so it gets tokens only as Redis
   * grants them.
   */
  learnedMinute: number
}

export interface Activity {
  /** requests_per_minute as last seen here (0: unknown or unlimited). */
  rpm: number
  /**
   * Last in use: requests or bytes here, or (learned from Redis) announced in use elsewhere; reported
   * while within a minute of this, then the agent leaves the sync.
   */
  lastActiveMs: number
  /** A request for the agent arrived here (shares follow demand). */
  lastDemandMs: number
  /** When this instance last reported the agent. */
  lastReportMs: number
}

export interface LedgerEntry {
  readonly window: Windows
  readonly requests: RequestCounts
  readonly bytes: ByteCounts
  readonly tokens: Tokens
  readonly activity: Activity
}

/** Counts of windows that rolled over before they were reported: still owed to the backend. */
export interface OrphanReport {
  readonly agentId: string
  readonly minute: number
  readonly requests: number
  /** Tokens held for `minute` and never used: given back, so that minute counts only what was admitted. */
  readonly returned: number
  readonly day: number
  readonly bytes: number
  /** When the agent was last in use (`Activity.lastActiveMs`). */
  readonly usedMs: number
}

export function newEntry(now: number): LedgerEntry {
  return {
    window: { minute: minuteOf(now), day: utcDay(now) },
    requests: { unsynced: 0, inflight: 0, global: 0, previous: 0 },
    bytes: { local: 0, unsynced: 0, inflight: 0, global: 0 },
    tokens: { held: 0, excess: 0, coldUsed: 0, lastFromHeld: false, reportedMinute: -1, learnedMinute: -1 },
    activity: { rpm: 0, lastActiveMs: now, lastDemandMs: -Infinity, lastReportMs: -Infinity },
  }
}

/**
 * Move to the windows of `now`. Returns what is still owed for the old ones (to be reported at the
 * next drain), or null: requests not yet reported, the old day's bytes, and the tokens held for the
 * old minute and never used. Those are given back rather than left counted there: the old minute
 * weighs on the sliding window of the new one, and tokens nobody used must not refuse requests
 * (a quiet agent's reserve on every instance would otherwise count as requests it never made).
 */
export function rollEntry(agentId: string, e: LedgerEntry, now: number): OrphanReport | null {
  const { window: w, requests: r, bytes: b, tokens } = e
  const minute = minuteOf(now)
  const day = utcDay(now)
  if (minute === w.minute && day === w.day) return null
  const unsynced = r.unsynced
  // Past the next minute the old one no longer weighs on anything (and its key may have expired).
  const returned = minute === w.minute + 1 ? tokens.held + tokens.excess : 0
  const dayBytes = day !== w.day ? b.unsynced : 0
  const orphan =
    unsynced > 0 || returned > 0 || dayBytes > 0
      ? {
          agentId,
          minute: w.minute,
          requests: unsynced,
          returned,
          day: w.day,
          bytes: dayBytes,
          usedMs: e.activity.lastActiveMs,
        }
      : null
  if (minute !== w.minute) {
    // The best estimate of the minute that just ended, until a sync brings the global count.
    r.previous = minute === w.minute + 1 ? Math.max(0, r.global + r.inflight + unsynced - returned) : 0
    w.minute = minute
    r.unsynced = r.inflight = r.global = 0
    tokens.held = tokens.excess = tokens.coldUsed = 0
  }
  if (day !== w.day) {
    w.day = day
    b.local = b.unsynced = b.inflight = b.global = 0
  }
  return orphan
}
