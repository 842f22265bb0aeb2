/**
 * Per-agent limits (SPEC §3 `limits`): requests per minute, concurrent connections, bytes per day.
 * Every method is synchronous and local: the data path never waits on anything.
 *
 * - requests_per_minute: a token bucket per agent (capacity = rpm, refill rpm/60000 per ms).
 * - concurrent_connections: a counter per agent on THIS instance; `acquireConnection` returns an
 *   idempotent release. (Not shared: a connection lives on one instance, and sharing it would need
 *   leases that survive a crashed instance.)
 * - bytes_per_day: bytes added with `addBytes` in the current UTC day; once the budget is used up,
 *   `admitRequest` denies until the next UTC midnight.
 * - `null` means unlimited. State is created lazily per agent; a config reload just passes new
 *   AgentLimits on the next call, and capacities adapt without resetting usage.
 *
 * Shared mode (a sync backend, redis-sync.ts, drives `limiter.shared`). Requests are admitted from
 * tokens this instance holds, which the backend reserves for it in Redis atomically, so that
 * together the instances never admit more than the budget:
 * - At every sync (`drain` → backend → `settle`) the instance reports what it admitted on its own
 *   (below) and tops its tokens up to its fair share, ceil((held + unclaimed) / instances), where
 *   unclaimed is the budget minus everything used or held anywhere in the sliding window (this
 *   minute, plus the previous minute weighted by how much of it still lies within the last 60 s);
 *   tokens above that share are given back, and once the agent has had no request here for a
 *   second, all but a small reserve (a tenth of a share) for the next ones. Redis grants no more
 *   than is left.
 * - Before its first report of a minute for an agent (a new agent here, or a new minute), an
 *   instance may admit up to ceil(left / instances) on its own, left as it last knew it; its first
 *   report turns what is left of that share into tokens it holds. Redis counts a share at least that
 *   large as used for every live instance that has not reported the agent yet, so no token is
 *   handed out twice. Instances report every agent active anywhere in the window (the backend
 *   learns them from Redis, all of them at start and each minute), which releases those
 *   placeholders within a sync or two and gives them a reserve there too.
 * - Without tokens a request is `denied_rate_limited` with Retry-After 1 (or the time until the
 *   window has room when the budget is used). The price of exactness: a burst larger than the
 *   reserve at an instance where the agent was quiet waits for the next sync (25 ms) for a full
 *   share, and one instance alone gets half of what is left per sync when two are alive.
 * The local token bucket applies in every mode (one instance never bursts past rpm); while the
 * backend is unreachable only it applies, and admissions are reported when the backend is back.
 */
import type { AgentLimits, DenyDecision } from '../policy/types.js'
import { createBucket, MS_PER_MINUTE, refund, resize, take, type TokenBucket } from './token-bucket.js'

export type LimitDetail = 'requests_per_minute' | 'bytes_per_day' | 'concurrent_connections'
export type Admission = { readonly ok: true } | DenyDecision
export type Release = () => void

/** What this instance reports for one agent at a sync (`drain`). */
export interface UsageReport {
  readonly agentId: string
  /** Epoch minute: floor(ms / 60000). */
  readonly minute: number
  /** Requests admitted here on its own since the last report (not from tokens it held). */
  readonly requests: number
  /** Tokens held and not used, given back (no longer usable here). */
  readonly returned: number
  /** More tokens asked for (0 without requests here in the last second). */
  readonly want: number
  /** The agent's requests_per_minute as this instance knows it (0 when unknown or unlimited). */
  readonly rpm: number
  /** How much of the previous minute still lies within the last 60 s, in thousandths. */
  readonly previousWeight: number
  /** UTC day as yyyymmdd. */
  readonly day: number
  readonly bytes: number
}

/** The backend's answer for one report: the global totals after it, and the share granted. */
export interface UsageTotals {
  readonly agentId: string
  readonly minute: number
  /** Requests used or held by every instance in `minute`. */
  readonly requests: number
  /** Requests of the minute before `minute`, every instance. */
  readonly previousRequests: number
  /** Tokens reserved for this instance. */
  readonly granted: number
  readonly day: number
  readonly bytes: number
}

/** Hooks for a shared-usage backend. Only one drain may be in flight at a time. */
export interface SharedUsage {
  /** Shared admission on (backend reachable) or off (purely local limits). */
  setShared(on: boolean): void
  isShared(): boolean
  /** Reports for the agents active here or anywhere in the last minute; they are in flight until settle/abandon. */
  drain(now?: number, opts?: { readonly final?: boolean }): UsageReport[]
  /** The backend applied the reports: totals, and tokens granted (for the drained minute; others are ignored). */
  settle(totals: readonly UsageTotals[]): void
  /** The sync failed: forget what was in flight (it may or may not have been applied). */
  abandon(): void
  /** How many instances are alive (from the sync's heartbeat). */
  setInstances(n: number): void
  /** Agents other instances are serving (from the backend): this one reports them too, so placeholders are released. */
  learn(agents: ReadonlyArray<{ readonly agentId: string; readonly rpm: number | null }>, now?: number): void
  /**
   * Called (synchronously, from the data path) when a sync is due sooner than the interval: the last
   * held token of an agent in demand was used, a request was refused for want of tokens while the
   * budget has room, or an agent was learned. The backend only schedules one; nothing waits on it.
   */
  onSyncWanted(wake: () => void): void
}

export interface LimiterStats {
  readonly agents: number
  readonly connections: number
  readonly shared: boolean
  readonly denied: Readonly<Record<LimitDetail, number>>
}

export interface Limiter {
  /** Before forwarding a request or opening a tunnel: rpm and bytes/day. Consumes one request on success. */
  admitRequest(agentId: string, limits: AgentLimits, now?: number): Admission
  /**
   * Give back one request admitted by `admitRequest` that turned out not to be one (a CONNECT whose
   * inner requests are counted one by one instead). Best effort: once synced, it stays counted.
   */
  refundRequest(agentId: string): void
  /** Hold a connection slot; call the returned release (idempotent) when the connection closes. */
  acquireConnection(agentId: string, limits: AgentLimits): Release | DenyDecision
  /** Count bytes moved for the agent (both directions) towards bytes_per_day. */
  addBytes(agentId: string, n: number, now?: number): void
  /** Has the agent used up bytes_per_day (open tunnels are then closed)? */
  bytesExhausted(agentId: string, limits: AgentLimits, now?: number): boolean
  stats(): LimiterStats
  readonly shared: SharedUsage
}

interface AgentState {
  bucket: TokenBucket | null
  conns: number
  /** Fixed windows for which the counters below hold. */
  minute: number
  day: number
  bytesLocal: number
  /** Requests admitted here on its own (not from held tokens) and not yet reported. */
  reqUnsynced: number
  /** Of those, the ones in the report in flight (they still count until settled). */
  reqInflight: number
  /** Requests used or held in `minute`, every instance (from the last settle). */
  reqGlobal: number
  /** Requests of the previous minute, all instances (from the sync; else this instance's own count). */
  reqPrevious: number
  bytesUnsynced: number
  bytesInflight: number
  bytesGlobal: number
  /** Synced while within a minute of this. */
  lastActiveMs: number
  /** A request for the agent arrived here (shares follow demand). */
  lastDemandMs: number
  /** requests_per_minute as last seen here (0: unknown or unlimited). */
  rpm: number
  /** Tokens held for `minute` (shared mode). */
  held: number
  /** The minute of this instance's last report for the agent; before it the agent is "cold" here. */
  reportedMinute: number
  /**
   * The minute this instance learned of the agent from Redis (it has a count elsewhere). A learned
   * agent is never cold: what is left of its budget is unknown here, so it gets tokens only as Redis
   * grants them.
   */
  learnedMinute: number
  coldUsed: number
  /** Where the last admission came from, for refundRequest. */
  lastFromHeld: boolean
  /** When this instance last reported the agent. */
  lastReportMs: number
}

interface OrphanReport {
  readonly agentId: string
  readonly minute: number
  readonly requests: number
  readonly day: number
  readonly bytes: number
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

/**
 * Tokens an instance keeps for an agent with no recent requests there but a count somewhere this
 * minute: requests that arrive now and then are admitted at once, and a burst starts before the next
 * sync brings a full share. A tenth of one instance's share (at least one): what idle instances hold
 * is what the busy one cannot use until they give it back.
 */
function reserveOf(rpm: number, instances: number): number {
  return Math.max(1, Math.ceil(rpm / (10 * instances)))
}

/** UTC day as yyyymmdd (20261125). */
export function utcDay(now: number): number {
  const d = new Date(now)
  return d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate()
}

/** Seconds until the next UTC midnight, at least 1. */
export function secondsToUtcMidnight(now: number): number {
  const d = new Date(now)
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
  return Math.max(1, Math.ceil((next - now) / 1000))
}

function deny(detail: LimitDetail, retryAfterS: number): DenyDecision {
  return { verdict: 'deny', reason: 'denied_rate_limited', ruleId: null, detail, retryAfterS }
}

/** How much of the previous minute still lies within the last 60 s at `now` (1 at the minute's start, 0 at its end). */
function previousWeight(minute: number, now: number): number {
  return Math.max(0, Math.min(1, 1 - (now - minute * MS_PER_MINUTE) / MS_PER_MINUTE))
}

export function createLimiter(opts: { now?: () => number } = {}): Limiter {
  const clock = opts.now ?? Date.now
  const agents = new Map<string, AgentState>()
  const denied: Record<LimitDetail, number> = { requests_per_minute: 0, bytes_per_day: 0, concurrent_connections: 0 }
  /** Unsynced counts of windows that rolled over before they were synced. */
  let orphans: OrphanReport[] = []
  let shared = false
  let instances = 1
  let connections = 0
  /** When sharing last turned on (this instance has heartbeaten, and so been counted live, since then). */
  let sharedSinceMs = Infinity
  /** The most live instances seen in `mostMinute`: placeholders were never smaller than rpm / this. */
  let mostInstances = 1
  let mostMinute = -1
  let wake: () => void = () => undefined

  function stateOf(agentId: string, now: number): AgentState {
    let st = agents.get(agentId)
    if (!st) {
      st = {
        bucket: null,
        conns: 0,
        minute: Math.floor(now / MS_PER_MINUTE),
        day: utcDay(now),
        bytesLocal: 0,
        reqUnsynced: 0,
        reqInflight: 0,
        reqGlobal: 0,
        reqPrevious: 0,
        bytesUnsynced: 0,
        bytesInflight: 0,
        bytesGlobal: 0,
        lastActiveMs: now,
        lastDemandMs: -Infinity,
        rpm: 0,
        held: 0,
        reportedMinute: -1,
        learnedMinute: -1,
        coldUsed: 0,
        lastFromHeld: false,
        lastReportMs: -Infinity,
      }
      agents.set(agentId, st)
    }
    return st
  }

  /** Move to the windows of `now`, keeping unsynced counts of the old ones for the next drain. */
  function roll(agentId: string, st: AgentState, now: number): void {
    const minute = Math.floor(now / MS_PER_MINUTE)
    const day = utcDay(now)
    if (minute === st.minute && day === st.day) return
    const unsynced = st.reqUnsynced
    if ((unsynced > 0 || (day !== st.day && st.bytesUnsynced > 0)) && orphans.length < MAX_ORPHANS) {
      const bytes = day !== st.day ? st.bytesUnsynced : 0
      orphans.push({ agentId, minute: st.minute, requests: unsynced, day: st.day, bytes })
    }
    if (minute !== st.minute) {
      // The best estimate of the minute that just ended, until a sync brings the global count.
      st.reqPrevious = minute === st.minute + 1 ? st.reqGlobal + st.reqInflight + unsynced : 0
      st.minute = minute
      st.reqUnsynced = st.reqInflight = st.reqGlobal = 0
      // Tokens are per minute: what is held for the old one stays counted there, unused.
      st.held = st.coldUsed = 0
    }
    if (day !== st.day) {
      st.day = day
      st.bytesLocal = st.bytesUnsynced = st.bytesInflight = st.bytesGlobal = 0
    }
  }

  function bytesUsed(st: AgentState): number {
    if (!shared) return st.bytesLocal
    return Math.max(st.bytesLocal, st.bytesGlobal + st.bytesInflight + st.bytesUnsynced)
  }

  function admitRequest(agentId: string, limits: AgentLimits, now = clock()): Admission {
    const st = stateOf(agentId, now)
    roll(agentId, st, now)
    st.lastActiveMs = now
    if (limits.bytesPerDay !== null && bytesUsed(st) >= limits.bytesPerDay) {
      denied.bytes_per_day++
      return deny('bytes_per_day', secondsToUtcMidnight(now))
    }
    const rpm = limits.requestsPerMinute
    if (rpm === null) {
      st.bucket = null
      st.rpm = 0
      return { ok: true }
    }
    st.rpm = rpm
    st.lastDemandMs = now
    if (st.bucket === null) st.bucket = createBucket(rpm, now)
    else resize(st.bucket, rpm, now)
    const r = take(st.bucket, now)
    if (!r.ok) {
      denied.requests_per_minute++
      // The later of the two: when this instance's bucket has a token, and when the shared window has room.
      return deny(
        'requests_per_minute',
        shared ? Math.max(r.retryAfterS, sharedRefusal(st, rpm, now).retryAfterS ?? 1) : r.retryAfterS,
      )
    }
    if (!shared) {
      st.reqUnsynced++
      st.lastFromHeld = false
      return { ok: true }
    }
    const denial = takeShared(st, rpm, now)
    if (denial === null) return { ok: true }
    refund(st.bucket)
    denied.requests_per_minute++
    return denial
  }

  /** What an instance may admit on its own: its share of what is left, rounded down (n rounded-up shares would add up to more than the budget). */
  function coldShare(rpm: number, used: number, previous: number): number {
    return Math.floor(Math.max(0, rpm - used - previous) / instances)
  }

  /**
   * Before its first report of the minute an instance may admit the agent's share on its own. An agent
   * it learned of from Redis (counted elsewhere) only if Redis has held this instance's placeholder
   * through every grant of the minute: it was live (sharing, so heartbeating) since before the minute
   * began. A fresh or recovering instance was not counted when the others took their tokens.
   */
  function isCold(st: AgentState): boolean {
    if (st.reportedMinute === st.minute) return false
    if (st.learnedMinute !== st.minute) return true
    return shared && sharedSinceMs <= st.minute * MS_PER_MINUTE - LIVE_MARGIN_MS
  }

  /**
   * The share an instance may admit on its own while cold. For an agent learned from Redis the counts
   * elsewhere are unknown here, so it is bounded by the smallest placeholder Redis held for this
   * instance this minute (rpm over the most instances seen live), never more.
   */
  function ownShare(st: AgentState, rpm: number, now: number): number {
    const share = coldShare(rpm, st.reqGlobal, st.reqPrevious * previousWeight(st.minute, now))
    if (st.learnedMinute !== st.minute) return share
    const most = mostMinute === st.minute ? Math.max(mostInstances, instances) : instances
    return Math.min(share, Math.floor(rpm / most))
  }

  /** Shared admission: a held token, else (while the agent is cold here) its own share. */
  function takeShared(st: AgentState, rpm: number, now: number): DenyDecision | null {
    if (st.held > 0) {
      st.held--
      st.lastFromHeld = true
      // The agent is busy here: top up before the next request finds nothing.
      if (st.held === 0) wake()
      return null
    }
    if (isCold(st) && st.coldUsed < ownShare(st, rpm, now)) {
      st.coldUsed++
      st.reqUnsynced++
      st.lastFromHeld = false
      return null
    }
    const refusal = sharedRefusal(st, rpm, now)
    // The window has room: tokens are a sync away; ask for them now rather than at the next interval.
    if (refusal.retryAfterS === 1) wake()
    return refusal
  }

  /** No token here: retry in a second while the window has budget left (the next sync brings a share), else when it has room. */
  function sharedRefusal(st: AgentState, rpm: number, now: number): DenyDecision {
    const previous = st.reqPrevious * previousWeight(st.minute, now)
    const used = st.reqGlobal + st.reqInflight + st.reqUnsynced + previous
    if (used + 1 <= rpm) return deny('requests_per_minute', 1)
    // Used up: retry when the window has room again, as the previous minute's weight fades or at the next minute.
    const windowEndS = Math.max(1, Math.ceil(((st.minute + 1) * MS_PER_MINUTE - now) / 1000))
    const room = rpm - 1 - st.reqGlobal - st.reqInflight - st.reqUnsynced
    if (st.reqPrevious <= 0 || room < 0) return deny('requests_per_minute', windowEndS)
    const fadedAt = (1 - room / st.reqPrevious) * MS_PER_MINUTE
    const elapsed = now - st.minute * MS_PER_MINUTE
    return deny('requests_per_minute', Math.min(windowEndS, Math.max(1, Math.ceil((fadedAt - elapsed) / 1000))))
  }

  function bytesExhausted(agentId: string, limits: AgentLimits, now = clock()): boolean {
    if (limits.bytesPerDay === null) return false
    const st = agents.get(agentId)
    if (!st) return false
    roll(agentId, st, now)
    return bytesUsed(st) >= limits.bytesPerDay
  }

  function refundRequest(agentId: string): void {
    const st = agents.get(agentId)
    if (!st) return
    if (st.lastFromHeld) {
      st.held++
    } else {
      if (st.reqUnsynced > 0) st.reqUnsynced--
      if (st.coldUsed > 0) st.coldUsed--
    }
    if (st.bucket !== null) refund(st.bucket)
  }

  function acquireConnection(agentId: string, limits: AgentLimits): Release | DenyDecision {
    const st = stateOf(agentId, clock())
    const max = limits.concurrentConnections
    if (max !== null && st.conns >= max) {
      denied.concurrent_connections++
      return deny('concurrent_connections', 1)
    }
    st.conns++
    connections++
    let released = false
    return () => {
      if (released) return
      released = true
      st.conns--
      connections--
    }
  }

  function addBytes(agentId: string, n: number, now = clock()): void {
    if (!(n > 0)) return
    const st = stateOf(agentId, now)
    roll(agentId, st, now)
    st.lastActiveMs = now
    st.bytesLocal += n
    st.bytesUnsynced += n
  }

  const sharedUsage: SharedUsage = {
    setShared(on) {
      if (on && !shared) sharedSinceMs = clock()
      if (!on) sharedSinceMs = Infinity
      shared = on
    },
    isShared: () => shared,
    drain(now = clock(), opts = {}) {
      const out: UsageReport[] = orphans.map((o) => ({ ...o, returned: 0, want: 0, rpm: 0, previousWeight: 0 }))
      orphans = []
      for (const [agentId, st] of agents) {
        roll(agentId, st, now)
        const pending = st.reqUnsynced > 0 || st.bytesUnsynced > 0 || st.held > 0
        // Agents active in the last minute (here or, learned, elsewhere) are reported even without new
        // counts: that is how this instance's placeholder share is released and its totals refreshed.
        if (!pending && now - st.lastActiveMs > MS_PER_MINUTE) continue
        const weight = previousWeight(st.minute, now)
        if (shared && st.rpm > 0 && isCold(st)) {
          // The first report of the minute: what is left of the share this instance may admit on its
          // own becomes tokens it holds, reported as used. Redis counted a placeholder at least that
          // large for it, so this fits, and a burst in progress goes on without a gap.
          const rest = Math.max(0, ownShare(st, st.rpm, now) - st.coldUsed)
          st.held += rest
          st.reqUnsynced += rest
        }
        const demand = now - st.lastDemandMs <= DEMAND_WINDOW_MS
        const unclaimed = Math.max(0, st.rpm - st.reqGlobal - st.reqUnsynced - st.reqPrevious * weight)
        const fair = Math.ceil((st.held + unclaimed) / instances)
        // A final report (the instance is stopping) gives every held token back.
        const target =
          !shared || st.rpm <= 0 || opts.final === true
            ? 0
            : demand
              ? fair
              : Math.min(fair, reserveOf(st.rpm, instances))
        const returned = Math.max(0, st.held - target)
        const want = Math.max(0, target - st.held)
        // Nothing new to say: refresh the totals once a second, not at every sync (many agents, 40 syncs a second).
        const quiet =
          st.reqUnsynced === 0 &&
          st.bytesUnsynced === 0 &&
          returned === 0 &&
          want === 0 &&
          st.reportedMinute === st.minute
        if (quiet && now - st.lastReportMs < REFRESH_MS && opts.final !== true) continue
        st.lastReportMs = now
        st.held -= returned
        out.push({
          agentId,
          minute: st.minute,
          requests: st.reqUnsynced,
          returned,
          want,
          rpm: st.rpm,
          previousWeight: Math.round(weight * 1000),
          day: st.day,
          bytes: st.bytesUnsynced,
        })
        st.reqInflight = st.reqUnsynced
        st.bytesInflight = st.bytesUnsynced
        st.reqUnsynced = st.bytesUnsynced = 0
        // Redis counts this instance as reported once the report is applied, and stops holding a
        // placeholder for it: from now on it admits only from tokens it holds (none of its own).
        st.reportedMinute = st.minute
      }
      return out
    },
    settle(totals) {
      for (const t of totals) {
        const st = agents.get(t.agentId)
        if (!st) continue
        if (t.minute === st.minute) {
          st.reqGlobal = t.requests
          st.reqPrevious = t.previousRequests
          st.reqInflight = 0
          st.held += t.granted
        }
        if (t.day === st.day) {
          st.bytesGlobal = t.bytes
          st.bytesInflight = 0
        }
      }
    },
    abandon() {
      // Whether the reports were applied is unknown: tokens given back or granted may stay counted in
      // Redis unused (under-admission, never over).
      for (const st of agents.values()) st.reqInflight = st.bytesInflight = 0
    },
    setInstances(n) {
      instances = Math.max(1, Math.floor(n) || 1)
      const minute = Math.floor(clock() / MS_PER_MINUTE)
      if (minute !== mostMinute) {
        mostMinute = minute
        mostInstances = instances
      } else mostInstances = Math.max(mostInstances, instances)
    },
    learn(learned, now = clock()) {
      for (const { agentId, rpm } of learned) {
        const st = stateOf(agentId, now)
        roll(agentId, st, now)
        st.lastActiveMs = Math.max(st.lastActiveMs, now)
        if (st.rpm === 0 && rpm !== null) st.rpm = rpm
        if (st.reportedMinute !== st.minute && st.learnedMinute !== st.minute) {
          st.learnedMinute = st.minute
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
    admitRequest,
    refundRequest,
    acquireConnection,
    addBytes,
    bytesExhausted,
    stats: () => ({ agents: agents.size, connections, shared, denied: { ...denied } }),
    shared: sharedUsage,
  }
}
