/**
 * The shared ledger: what this instance knows and owes of every agent's shared budget. Per agent,
 * the counts of the current windows (requests this minute, bytes today) split by where they stand
 * (unreported, in flight, known globally), the tokens held here, and when the agent was last active.
 * It implements `SharedUsage`, the hooks redis-sync.ts drives; the limiter asks it for admissions
 * while sharing is on. Synchronous; time is an argument. The rules it follows are tested in
 * test/unit/limits/limiter.test.ts (one rule at a time) and invariants.test.ts (what they add up to).
 */
import { MS_PER_MINUTE } from './token-bucket.js'
import { coldShare, learnedShareCap, rebalance, refusalRetryAfterS } from './share.js'
import { minuteOf, previousWeight } from './windows.js'
import { newEntry, rollEntry, type LedgerEntry, type OrphanReport } from './ledger-entry.js'
import type { SharedUsage, UsageReport } from './shared-usage.js'

/** This instance's place among the sharing instances. */
interface Membership {
  shared: boolean
  instances: number
  /** When sharing last turned on (this instance has heartbeaten, and so been counted live, since then). */
  sharedSinceMs: number
  /** The most live instances seen in `mostMinute`: placeholders were never smaller than rpm / this. */
  mostInstances: number
  mostMinute: number
}

const MAX_ORPHANS = 10_000
/** An agent with nothing new is reported (its totals refreshed) at most this often. */
const REFRESH_MS = 1000
/**
 * How long before a minute starts an instance must have been sharing for Redis to have counted its
 * placeholder in every grant of that minute: the others learn it is live at their next sync (at most
 * the idle sync interval, 250 ms, plus a round trip).
 */
const LIVE_MARGIN_MS = 1000
/** A full share is asked for agents with requests here within this window; others keep a reserve. */
const DEMAND_WINDOW_MS = 1000

export interface Ledger {
  /** The agent's entry, created if new (windows not moved). */
  entry(agentId: string, now: number): LedgerEntry
  /** The agent's entry, moved to the windows of `now`. */
  current(agentId: string, now: number): LedgerEntry
  /** The agent's entry if it has one, moved to the windows of `now`. */
  existing(agentId: string, now: number): LedgerEntry | undefined
  /** The agent's entry if it has one, as it is. */
  peek(agentId: string): LedgerEntry | undefined
  size(): number
  isShared(): boolean
  /** Bytes the agent used today: this instance's alone, or (shared) the most anyone knows. */
  bytesUsed(e: LedgerEntry): number
  /** A request admitted by local limits alone (sharing off): reported at the next sync. */
  countLocal(e: LedgerEntry): void
  /** Shared admission: null when a token was taken, else Retry-After in seconds. */
  takeShared(e: LedgerEntry, rpm: number, now: number): number | null
  /** Retry-After when the shared window is the reason to wait. */
  refusalRetryAfterS(e: LedgerEntry, rpm: number, now: number): number
  /** Give back the last admission (a held token, or one admitted on its own). */
  refund(e: LedgerEntry): void
  addBytes(e: LedgerEntry, n: number): void
  /**
   * Forget agents idle for longer than `idleMs` with nothing left to report (sandboxes come and go:
   * each is a key of its own). Returns the ids forgotten.
   */
  prune(now: number, idleMs: number): string[]
  readonly usage: SharedUsage
}

export function createLedger(clock: () => number): Ledger {
  const agents = new Map<string, LedgerEntry>()
  /** Unsynced counts of windows that rolled over before they were synced. */
  let orphans: OrphanReport[] = []
  const m: Membership = { shared: false, instances: 1, sharedSinceMs: Infinity, mostInstances: 1, mostMinute: -1 }
  let wake: () => void = () => undefined

  function entry(agentId: string, now: number): LedgerEntry {
    let e = agents.get(agentId)
    if (!e) {
      e = newEntry(now)
      agents.set(agentId, e)
    }
    return e
  }

  function roll(agentId: string, e: LedgerEntry, now: number): void {
    const orphan = rollEntry(agentId, e, now)
    if (orphan !== null && orphans.length < MAX_ORPHANS) orphans.push(orphan)
  }

  function current(agentId: string, now: number): LedgerEntry {
    const e = entry(agentId, now)
    roll(agentId, e, now)
    return e
  }

  /**
   * Before its first report of the minute an instance may admit the agent's share on its own. An agent
   * it learned of from Redis (counted elsewhere) only if Redis has held this instance's placeholder
   * through every grant of the minute: it was live (sharing, so heartbeating) since before the minute
   * began. A fresh or recovering instance was not counted when the others took their tokens.
   */
  function isCold(e: LedgerEntry): boolean {
    const { tokens, window: w } = e
    if (tokens.reportedMinute === w.minute) return false
    if (tokens.learnedMinute !== w.minute) return true
    return m.shared && m.sharedSinceMs <= w.minute * MS_PER_MINUTE - LIVE_MARGIN_MS
  }

  /**
   * The share an instance may admit on its own while cold. For an agent learned from Redis the counts
   * elsewhere are unknown here, so it is bounded by the smallest placeholder Redis held for this
   * instance this minute, never more.
   */
  function ownShare(e: LedgerEntry, rpm: number, now: number): number {
    const { requests: r, window: w } = e
    const share = coldShare(rpm, r.global, r.previous * previousWeight(w.minute, now), m.instances)
    if (e.tokens.learnedMinute !== w.minute) return share
    const most = m.mostMinute === w.minute ? Math.max(m.mostInstances, m.instances) : m.instances
    return Math.min(share, learnedShareCap(rpm, most))
  }

  function retryAfterS(e: LedgerEntry, rpm: number, now: number): number {
    const { requests: r, window: w } = e
    return refusalRetryAfterS({
      rpm,
      minute: w.minute,
      now,
      counted: r.global + r.inflight + r.unsynced,
      previous: r.previous,
    })
  }

  function takeShared(e: LedgerEntry, rpm: number, now: number): number | null {
    const { tokens, requests } = e
    // Tokens held under a larger budget (requests_per_minute lowered by a reload): no instance keeps
    // more than its share of the new one, or each would go on admitting from the old.
    const cap = Math.ceil(rpm / m.instances)
    if (tokens.held > cap) {
      tokens.excess += tokens.held - cap
      tokens.held = cap
      wake()
    }
    if (tokens.held > 0) {
      tokens.held--
      tokens.lastFromHeld = true
      // The agent is busy here: top up before the next request finds nothing.
      if (tokens.held === 0) wake()
      return null
    }
    if (isCold(e) && tokens.coldUsed < ownShare(e, rpm, now)) {
      tokens.coldUsed++
      requests.unsynced++
      tokens.lastFromHeld = false
      return null
    }
    const s = retryAfterS(e, rpm, now)
    // The window has room: tokens are a sync away; ask for them now rather than at the next interval.
    if (s === 1) wake()
    return s
  }

  /** One agent's report, or null when it has nothing new and its totals were refreshed within REFRESH_MS. */
  function report(agentId: string, e: LedgerEntry, now: number, final: boolean): UsageReport | null {
    const { window: w, requests: r, bytes: b, tokens, activity: a } = e
    const weight = previousWeight(w.minute, now)
    const demand = now - a.lastDemandMs <= DEMAND_WINDOW_MS
    if (m.shared && a.rpm > 0 && isCold(e)) {
      // The first report of the minute: what is left of the share this instance may admit on its
      // own becomes tokens it holds, reported as used. Redis counted a placeholder at least that
      // large for it, so this fits, and a burst in progress goes on without a gap.
      const rest = Math.max(0, ownShare(e, a.rpm, now) - tokens.coldUsed)
      tokens.held += rest
      r.unsynced += rest
    }
    const { returned, want } = rebalance({
      held: tokens.held,
      rpm: a.rpm,
      counted: r.global + r.unsynced,
      previousWeighted: r.previous * weight,
      instances: m.instances,
      demand,
      // A final report (the instance is stopping) gives every held token back.
      holdNone: !m.shared || a.rpm <= 0 || final,
    })
    const excess = tokens.excess
    // Nothing new to say: refresh the totals once a second, not at every sync (many agents, 40 syncs a second).
    const quiet =
      r.unsynced === 0 &&
      b.unsynced === 0 &&
      returned === 0 &&
      excess === 0 &&
      want === 0 &&
      tokens.reportedMinute === w.minute
    if (quiet && now - a.lastReportMs < REFRESH_MS && !final) return null
    a.lastReportMs = now
    tokens.held -= returned
    tokens.excess = 0
    const out: UsageReport = {
      agentId,
      minute: w.minute,
      requests: r.unsynced,
      returned: returned + excess,
      want,
      rpm: a.rpm,
      previousWeight: Math.round(weight * 1000),
      day: w.day,
      bytes: b.unsynced,
      usedMs: a.lastActiveMs,
    }
    r.inflight = r.unsynced
    b.inflight = b.unsynced
    r.unsynced = b.unsynced = 0
    // Redis counts this instance as reported once the report is applied, and stops holding a
    // placeholder for it: from now on it admits only from tokens it holds (none of its own).
    tokens.reportedMinute = w.minute
    return out
  }

  const usage: SharedUsage = {
    setShared(on) {
      if (on && !m.shared) m.sharedSinceMs = clock()
      if (!on) m.sharedSinceMs = Infinity
      m.shared = on
    },
    isShared: () => m.shared,
    drain(now = clock(), opts = {}) {
      const final = opts.final === true
      const out: UsageReport[] = orphans.map((o) => ({ ...o, want: 0, rpm: 0, previousWeight: 0 }))
      orphans = []
      for (const [agentId, e] of agents) {
        roll(agentId, e, now)
        const { requests, bytes, tokens } = e
        const owed = requests.unsynced > 0 || bytes.unsynced > 0 || tokens.excess > 0 || (final && tokens.held > 0)
        // Agents in use in the last minute (here or, learned, elsewhere) are reported even without new
        // counts: that is how this instance's placeholder share is released and its totals refreshed.
        // Past that an agent leaves the sync (sandboxes come and go, a key each: syncing each for ever
        // added up to thousands of scripts a second with no traffic). What it holds stays held, so a
        // request that comes back is admitted at once; the roll to the next minute gives it back (an
        // orphan report), and from then on it is cold here, admitted at most its own share until its
        // next report, with Redis holding a placeholder for it.
        if (!owed && now - e.activity.lastActiveMs > MS_PER_MINUTE) continue
        const r = report(agentId, e, now, final)
        if (r !== null) out.push(r)
      }
      return out
    },
    settle(totals) {
      for (const t of totals) {
        const e = agents.get(t.agentId)
        if (!e) continue
        if (t.minute === e.window.minute) {
          e.requests.global = t.requests
          e.requests.previous = t.previousRequests
          e.requests.inflight = 0
          e.tokens.held += t.granted
        }
        if (t.day === e.window.day) {
          e.bytes.global = t.bytes
          e.bytes.inflight = 0
        }
      }
    },
    abandon() {
      // Whether the reports were applied is unknown: tokens given back or granted may stay counted in
      // Redis unused (under-admission, never over).
      for (const e of agents.values()) e.requests.inflight = e.bytes.inflight = 0
    },
    setInstances(n) {
      m.instances = Math.max(1, Math.floor(n) || 1)
      const minute = minuteOf(clock())
      if (minute !== m.mostMinute) {
        m.mostMinute = minute
        m.mostInstances = m.instances
      } else m.mostInstances = Math.max(m.mostInstances, m.instances)
    },
    learn(learned, now = clock()) {
      for (const { agentId, rpm, usedMs } of learned) {
        const known = agents.has(agentId)
        const e = current(agentId, now)
        // When it was last used, not when it was heard of: the active sets list an agent for two
        // minutes, and every sync that reads one again must not keep it in the sync a minute more.
        const usedAt = Math.min(usedMs, now)
        e.activity.lastActiveMs = known ? Math.max(e.activity.lastActiveMs, usedAt) : usedAt
        if (e.activity.rpm === 0 && rpm !== null) e.activity.rpm = rpm
        if (e.tokens.reportedMinute !== e.window.minute && e.tokens.learnedMinute !== e.window.minute) {
          e.tokens.learnedMinute = e.window.minute
          // Report it at once: its placeholder is released and a reserve granted before a request comes.
          wake()
        }
      }
    },
    onSyncWanted(fn) {
      wake = fn
    },
  }

  return {
    entry,
    current,
    existing(agentId, now) {
      const e = agents.get(agentId)
      if (e) roll(agentId, e, now)
      return e
    },
    peek: (agentId) => agents.get(agentId),
    size: () => agents.size,
    isShared: () => m.shared,
    bytesUsed(e) {
      const b = e.bytes
      if (!m.shared) return b.local
      return Math.max(b.local, b.global + b.inflight + b.unsynced)
    },
    countLocal(e) {
      e.requests.unsynced++
      e.tokens.lastFromHeld = false
    },
    takeShared,
    refusalRetryAfterS: retryAfterS,
    refund(e) {
      if (e.tokens.lastFromHeld) {
        e.tokens.held++
      } else {
        if (e.requests.unsynced > 0) e.requests.unsynced--
        if (e.tokens.coldUsed > 0) e.tokens.coldUsed--
      }
    },
    addBytes(e, n) {
      e.bytes.local += n
      e.bytes.unsynced += n
    },
    prune(now, idleMs) {
      const gone: string[] = []
      for (const [agentId, e] of agents) {
        if (now - e.activity.lastActiveMs <= idleMs) continue
        // Counts owed to the shared ledger (without sharing nothing is ever reported: nothing is owed).
        const pending =
          m.shared &&
          (e.requests.unsynced > 0 ||
            e.requests.inflight > 0 ||
            e.bytes.unsynced > 0 ||
            e.bytes.inflight > 0 ||
            e.tokens.held > 0)
        if (pending) continue
        agents.delete(agentId)
        gone.push(agentId)
      }
      return gone
    },
    usage,
  }
}
