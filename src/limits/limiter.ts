/**
 * Per-agent limits (SPEC §3 `limits`): requests per minute, concurrent connections, bytes per day.
 * Every method is synchronous and local: the data path never waits on anything.
 *
 * - requests_per_minute: a token bucket per agent (local-limits.ts); with a sync backend also the
 *   agent's shared budget (ledger.ts): a request is admitted from tokens this instance holds, which
 *   the backend reserved for it, or before its first report of the minute from its own share.
 * - concurrent_connections: a counter per agent on THIS instance (local-limits.ts).
 * - bytes_per_day: bytes added with `addBytes` in the current UTC day; once the budget is used up,
 *   `admitRequest` denies until the next UTC midnight.
 * - `null` means unlimited. State is created lazily per agent; a config reload just passes new
 *   AgentLimits on the next call, and capacities adapt without resetting usage.
 *
 * What sharing guarantees (the instances together admit at most the budget per minute, plus one
 * per instance for rounding; no token is handed out twice; a stopping instance gives its tokens
 * back; an outage leaves local limits and is reported afterwards) is tested, not described:
 * test/unit/limits/invariants.test.ts.
 */
import type { AgentLimits, DenyDecision } from '../policy/types.js'
import { createLedger } from './ledger.js'
import { createLocalLimits, type Release } from './local-limits.js'
import type { SharedUsage } from './shared-usage.js'
import { secondsToUtcMidnight } from './windows.js'

export type { Release } from './local-limits.js'
export type LimitDetail = 'requests_per_minute' | 'bytes_per_day' | 'concurrent_connections'
export type Admission = { readonly ok: true } | DenyDecision

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
  /** The hooks a sync backend (redis-sync.ts) drives. */
  readonly shared: SharedUsage
}

function deny(detail: LimitDetail, retryAfterS: number): DenyDecision {
  return { verdict: 'deny', reason: 'denied_rate_limited', ruleId: null, detail, retryAfterS }
}

/**
 * Agents (above all sandboxes, a key each) idle longer than this are forgotten: past a UTC day their
 * bytes_per_day no longer counts, and an idle minute has refilled their bucket.
 */
export const FORGET_IDLE_MS = 25 * 3600_000
const PRUNE_EVERY_MS = 10 * 60_000

export function createLimiter(opts: { now?: () => number } = {}): Limiter {
  const clock = opts.now ?? Date.now
  const ledger = createLedger(clock)
  const local = createLocalLimits()
  const denied: Record<LimitDetail, number> = { requests_per_minute: 0, bytes_per_day: 0, concurrent_connections: 0 }
  let prunedAt = clock()

  function admitRequest(agentId: string, limits: AgentLimits, now = clock()): Admission {
    // Pruning rides on requests (no timer): a proxy that serves nothing grows nothing.
    if (now - prunedAt > PRUNE_EVERY_MS) {
      prunedAt = now
      for (const gone of ledger.prune(now, FORGET_IDLE_MS)) local.forget(gone)
    }
    const e = ledger.current(agentId, now)
    e.activity.lastActiveMs = now
    if (limits.bytesPerDay !== null && ledger.bytesUsed(e) >= limits.bytesPerDay) {
      denied.bytes_per_day++
      return deny('bytes_per_day', secondsToUtcMidnight(now))
    }
    const rpm = limits.requestsPerMinute
    if (rpm === null) {
      local.take(agentId, null, now)
      e.activity.rpm = 0
      return { ok: true }
    }
    e.activity.rpm = rpm
    e.activity.lastDemandMs = now
    const r = local.take(agentId, rpm, now)
    if (!r.ok) {
      denied.requests_per_minute++
      // The later of the two: when this instance's bucket has a token, and when the shared window has room.
      const shared = ledger.isShared()
      return deny(
        'requests_per_minute',
        shared ? Math.max(r.retryAfterS, ledger.refusalRetryAfterS(e, rpm, now)) : r.retryAfterS,
      )
    }
    if (!ledger.isShared()) {
      ledger.countLocal(e)
      return { ok: true }
    }
    const retryAfterS = ledger.takeShared(e, rpm, now)
    if (retryAfterS === null) return { ok: true }
    local.refund(agentId)
    denied.requests_per_minute++
    return deny('requests_per_minute', retryAfterS)
  }

  return {
    admitRequest,
    refundRequest(agentId) {
      const e = ledger.peek(agentId)
      if (!e) return
      ledger.refund(e)
      local.refund(agentId)
    },
    acquireConnection(agentId, limits) {
      ledger.entry(agentId, clock())
      const release = local.acquire(agentId, limits.concurrentConnections)
      if (release !== null) return release
      denied.concurrent_connections++
      return deny('concurrent_connections', 1)
    },
    addBytes(agentId, n, now = clock()) {
      if (!(n > 0)) return
      const e = ledger.current(agentId, now)
      e.activity.lastActiveMs = now
      ledger.addBytes(e, n)
    },
    bytesExhausted(agentId, limits, now = clock()) {
      if (limits.bytesPerDay === null) return false
      const e = ledger.existing(agentId, now)
      return e !== undefined && ledger.bytesUsed(e) >= limits.bytesPerDay
    },
    stats: () => ({
      agents: ledger.size(),
      connections: local.connections(),
      shared: ledger.isShared(),
      denied: { ...denied },
    }),
    shared: ledger.usage,
  }
}
