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
 * Shared mode (see redis-sync.ts). With nothing attached the limiter is purely local. A sync
 * backend uses `limiter.shared`: it `drain()`s what this instance admitted since the last sync
 * (per agent, per fixed window: the epoch minute for requests, the UTC day for bytes), adds it to
 * the global counters, and `settle()`s the global totals back. While shared mode is on,
 * `admitRequest` also requires  in-flight + unsynced < ceil(left / instances), where
 *   left = budget - this minute's global count - the previous minute's global count weighted by
 *          how much of it still lies within the last 60 s (a sliding-window estimate, so a new
 *          minute is no fresh budget on top of one just spent),
 * and `instances` is how many instances are alive (the sync's heartbeat): each may use only its
 * share of what was left at the last sync, so together they stay within the budget however fast
 * requests arrive between syncs. The price: one instance alone receiving an agent's burst gets
 * 1/instances of what is left per sync interval (25 ms), so a burst of the whole budget inside a
 * few intervals sees some 429s with Retry-After 1. The admit check is the MIN of the local bucket
 * and that share: the bucket keeps one instance from bursting past rpm, the share keeps all
 * instances together to rpm per 60 s.
 */
import type { AgentLimits, DenyDecision } from '../policy/types.js'
import { createBucket, MS_PER_MINUTE, refund, resize, take, type TokenBucket } from './token-bucket.js'

export type LimitDetail = 'requests_per_minute' | 'bytes_per_day' | 'concurrent_connections'
export type Admission = { readonly ok: true } | DenyDecision
export type Release = () => void

/** Counts for one agent in one pair of windows (a delta to add, or the global totals after adding). */
export interface UsageCounts {
  readonly agentId: string
  /** Epoch minute: floor(ms / 60000). */
  readonly minute: number
  readonly requests: number
  /** UTC day as yyyymmdd. */
  readonly day: number
  readonly bytes: number
  /** In totals only: requests of the minute before `minute` (for the sliding-window estimate). */
  readonly previousRequests?: number
}

/** Hooks for a shared-usage backend. Only one drain may be in flight at a time. */
export interface SharedUsage {
  /** Shared check on (backend reachable) or off (purely local limits). */
  setShared(on: boolean): void
  isShared(): boolean
  /** Unsynced counts of agents active in the last minute; they become in-flight until settle/abandon. */
  drain(now?: number): UsageCounts[]
  /** The backend answered with global totals for the drained windows (in-flight counts included). */
  settle(totals: readonly UsageCounts[]): void
  /** The sync failed: forget the in-flight counts (they may or may not have been counted). */
  abandon(): void
  /** How many instances are alive (from the sync's heartbeat): each may admit 1/n of what is left per sync. */
  setInstances(n: number): void
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
  reqUnsynced: number
  reqInflight: number
  reqGlobal: number
  /** Requests of the previous minute, all instances (from the sync; else this instance's own count). */
  reqPrevious: number
  bytesUnsynced: number
  bytesInflight: number
  bytesGlobal: number
  lastActiveMs: number
}

const MAX_ORPHANS = 10_000

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

export function createLimiter(opts: { now?: () => number } = {}): Limiter {
  const clock = opts.now ?? Date.now
  const agents = new Map<string, AgentState>()
  const denied: Record<LimitDetail, number> = { requests_per_minute: 0, bytes_per_day: 0, concurrent_connections: 0 }
  /** Unsynced counts of windows that rolled over before they were synced. */
  let orphans: UsageCounts[] = []
  let shared = false
  let instances = 1
  let connections = 0

  function stateOf(agentId: string, now: number): AgentState {
    let st = agents.get(agentId)
    if (!st) {
      st = {
        bucket: null, conns: 0, minute: Math.floor(now / MS_PER_MINUTE), day: utcDay(now), bytesLocal: 0,
        reqUnsynced: 0, reqInflight: 0, reqGlobal: 0, reqPrevious: 0, bytesUnsynced: 0, bytesInflight: 0, bytesGlobal: 0, lastActiveMs: now,
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
    if ((st.reqUnsynced > 0 || (day !== st.day && st.bytesUnsynced > 0)) && orphans.length < MAX_ORPHANS) {
      const bytes = day !== st.day ? st.bytesUnsynced : 0
      orphans.push({ agentId, minute: st.minute, requests: st.reqUnsynced, day: st.day, bytes })
    }
    if (minute !== st.minute) {
      // The best estimate of the minute that just ended, until a sync brings the global count.
      st.reqPrevious = minute === st.minute + 1 ? st.reqGlobal + st.reqInflight + st.reqUnsynced : 0
      st.minute = minute
      st.reqUnsynced = st.reqInflight = st.reqGlobal = 0
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
      return { ok: true }
    }
    if (st.bucket === null) st.bucket = createBucket(rpm, now)
    else resize(st.bucket, rpm, now)
    if (shared) {
      const denial = sharedWindowDenial(st, rpm, now)
      if (denial) {
        denied.requests_per_minute++
        return denial
      }
    }
    const r = take(st.bucket, now)
    if (!r.ok) {
      denied.requests_per_minute++
      return deny('requests_per_minute', r.retryAfterS)
    }
    st.reqUnsynced++
    return { ok: true }
  }

  /**
   * The shared check. Sliding window: the current minute's count plus the previous minute's, weighted
   * by how much of it still lies within the last 60 s, so a fresh minute does not hand out a second
   * budget on top of one just spent. This instance may use ceil(left / N) of what was left at the last
   * sync (N live instances, any of which may be admitting for this agent), so together they stay within
   * the budget however fast requests come between syncs.
   */
  function sharedWindowDenial(st: AgentState, rpm: number, now: number): DenyDecision | null {
    const elapsed = (now - st.minute * MS_PER_MINUTE) / MS_PER_MINUTE
    const previous = st.reqPrevious * (1 - elapsed)
    const left = rpm - st.reqGlobal - previous
    const mine = st.reqInflight + st.reqUnsynced
    if (mine < Math.ceil(left / instances)) return null
    if (st.reqGlobal + previous + mine < rpm) return deny('requests_per_minute', 1) // only this sync interval's share is used
    // Used up: retry when the window has room again, either as the previous minute's weight fades or at
    // the next minute.
    const windowEndS = Math.max(1, Math.ceil(((st.minute + 1) * MS_PER_MINUTE - now) / 1000))
    const room = rpm - 1 - st.reqGlobal - mine
    if (st.reqPrevious <= 0 || room < 0) return deny('requests_per_minute', windowEndS)
    const fadedAt = (1 - room / st.reqPrevious) * MS_PER_MINUTE
    return deny('requests_per_minute', Math.min(windowEndS, Math.max(1, Math.ceil((fadedAt - elapsed * MS_PER_MINUTE) / 1000))))
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
    if (st.reqUnsynced > 0) st.reqUnsynced--
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
      shared = on
    },
    isShared: () => shared,
    drain(now = clock()) {
      const out = orphans
      orphans = []
      for (const [agentId, st] of agents) {
        roll(agentId, st, now)
        const pending = st.reqUnsynced > 0 || st.bytesUnsynced > 0
        // Agents active in the last minute are refreshed even without new local counts, so that
        // what other instances admitted is known before this one admits again.
        if (!pending && now - st.lastActiveMs > MS_PER_MINUTE) continue
        out.push({ agentId, minute: st.minute, requests: st.reqUnsynced, day: st.day, bytes: st.bytesUnsynced })
        st.reqInflight = st.reqUnsynced
        st.bytesInflight = st.bytesUnsynced
        st.reqUnsynced = st.bytesUnsynced = 0
      }
      return out
    },
    settle(totals) {
      for (const t of totals) {
        const st = agents.get(t.agentId)
        if (!st) continue
        if (t.minute === st.minute) {
          st.reqGlobal = t.requests
          st.reqInflight = 0
          if (t.previousRequests !== undefined) st.reqPrevious = t.previousRequests
        }
        if (t.day === st.day) {
          st.bytesGlobal = t.bytes
          st.bytesInflight = 0
        }
      }
    },
    abandon() {
      for (const st of agents.values()) st.reqInflight = st.bytesInflight = 0
    },
    setInstances(n) {
      instances = Math.max(1, Math.floor(n) || 1)
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
