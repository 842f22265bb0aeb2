/**
 * The contract between the shared ledger (ledger.ts, on the data path) and a sync backend
 * (redis-sync.ts, on a timer): reports go out, totals and grants come back. Types only.
 */
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
  /**
   * When the agent was last in use as this instance knows (requests or bytes here, or learned from
   * the backend): what it is announced with in the minute's active set. Not the time of the report:
   * reports that only keep a reserve or refresh totals must not make an agent nobody uses look in
   * use, or every instance would keep it in its sync for ever.
   */
  readonly usedMs: number
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

/** An agent announced in use by some instance, as the backend lists it. */
export interface LearnedAgent {
  readonly agentId: string
  readonly rpm: number | null
  /** When it was last announced in use (the announcing instance's clock). */
  readonly usedMs: number
}

/** Hooks for a shared-usage backend. Only one drain may be in flight at a time. */
export interface SharedUsage {
  /** Shared admission on (backend reachable) or off (purely local limits). */
  setShared(on: boolean): void
  isShared(): boolean
  /**
   * Reports for the agents in use here or anywhere in the last minute, and for what others still owe
   * (counts not yet reported, tokens to give back); they are in flight until settle/abandon.
   */
  drain(now?: number, opts?: { readonly final?: boolean }): UsageReport[]
  /** The backend applied the reports: totals, and tokens granted (for the drained minute; others are ignored). */
  settle(totals: readonly UsageTotals[]): void
  /** The sync failed: forget what was in flight (it may or may not have been applied). */
  abandon(): void
  /** How many instances are alive (from the sync's heartbeat). */
  setInstances(n: number): void
  /**
   * Agents other instances are serving (from the backend): this one reports them too, so placeholders
   * are released, for a minute after `usedMs` (when an instance last announced the agent in use).
   */
  learn(agents: readonly LearnedAgent[], now?: number): void
  /**
   * Called (synchronously, from the data path) when a sync is due sooner than the interval: the last
   * held token of an agent in demand was used, a request was refused for want of tokens while the
   * budget has room, or an agent was learned. The backend only schedules one; nothing waits on it.
   */
  onSyncWanted(wake: () => void): void
}
