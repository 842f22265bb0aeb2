/**
 * Revoked sandbox credentials (SPEC §9), kept next to the approvals: the approvals file's directory,
 * or Redis (hash + pub/sub) when telemetry.redis is configured. An entry is kept until the credential
 * it revokes would have expired anyway, then dropped. `current()` is synchronous and in memory: the
 * data path asks it per request.
 */
export interface Revocation {
  /** The sandbox id (a ULID). */
  readonly id: string
  /** Its template agent, when known (from the records), else null. */
  readonly agent: string | null
  readonly revoked_at: string
  /** Kept until then: no credential of this id lives longer. */
  readonly expires_at: string
  readonly revoked_by: string
  readonly reason: string
}

export interface RevocationStore {
  current(): readonly Revocation[]
  /** The set has been read at least once: until then a revoked credential cannot be told (Redis down since start). */
  loaded(): boolean
  /** Idempotent: revoking a revoked sandbox again keeps the first entry. */
  add(r: Revocation): Promise<void>
  /** Called after any change, local or from another instance. */
  onChange(listener: () => void): void
  close(): Promise<void>
}

export function isKept(r: Revocation, nowMs: number): boolean {
  return Date.parse(r.expires_at) > nowMs
}

/** A stored entry as read back (a hand-edited file, another version's JSON): the fields this one needs. */
export function isRevocation(v: unknown): v is Revocation {
  if (v === null || typeof v !== 'object') return false
  const r = v as Record<string, unknown>
  return typeof r.id === 'string' && typeof r.expires_at === 'string' && !Number.isNaN(Date.parse(r.expires_at))
}
