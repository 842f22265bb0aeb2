import type { Approval } from '../policy/approvals.js'

/**
 * Where approvals live. `current()` is synchronous and in memory (the data
 * path reads it); writes are async and reach every instance within a second
 * (the file store is one instance; the Redis store publishes changes).
 */
export interface ApprovalStore {
  current(): readonly Approval[]
  add(a: Approval): Promise<void>
  /** Resolves false when no such approval exists. */
  revoke(id: string): Promise<boolean>
  /** Called after any change, local or from another instance. */
  onChange(listener: () => void): void
  close(): Promise<void>
}

export function isActive(a: Approval, nowMs: number): boolean {
  return Date.parse(a.expires_at) > nowMs
}
