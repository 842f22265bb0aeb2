/**
 * `portcullis sandbox list` / `GET /api/sandboxes`: the sandboxes seen recently, folded from their
 * decision records (the Redis stream when configured, else this instance's ring), and those revoked.
 * PURE.
 */
import type { TelemetryRecord } from '../telemetry/events.js'
import type { Revocation } from './revocation-store.js'

export interface SeenSandbox {
  readonly id: string
  readonly agent: string | null
  readonly labels: Readonly<Record<string, string>>
  readonly first_seen: string
  /** Its last request. */
  readonly last_seen: string
  readonly allowed: number
  readonly denied: number
  readonly revoked: boolean
  /** When its credential expires, from its newest record that says (null from records that predate the field). */
  readonly expires_at: string | null
  /** revoked, else expired once expires_at has passed (or the proxy last refused it as expired), else active. */
  readonly state: 'active' | 'expired' | 'revoked'
}

export function summarizeSandboxes(
  records: readonly TelemetryRecord[],
  revocations: readonly Revocation[],
  nowMs: number = Date.now(),
): SeenSandbox[] {
  const revoked = new Set(revocations.map((r) => r.id))
  const seen = new Map<string, { -readonly [K in keyof SeenSandbox]: SeenSandbox[K] } & { lastDetail?: string }>()
  for (const r of records) {
    if (r.event !== 'decision' || r.sandbox === undefined) continue
    let s = seen.get(r.sandbox)
    if (s === undefined) {
      s = {
        id: r.sandbox,
        agent: r.agent,
        labels: r.labels ?? {},
        first_seen: r.time,
        last_seen: r.time,
        allowed: 0,
        denied: 0,
        revoked: revoked.has(r.sandbox),
        expires_at: null,
        state: 'active',
      }
      seen.set(r.sandbox, s)
    }
    if (r.time < s.first_seen) s.first_seen = r.time
    if (r.time >= s.last_seen) {
      s.last_seen = r.time
      s.lastDetail = r.detail
    }
    if (r.sandbox_expires_at !== undefined && (s.expires_at === null || r.sandbox_expires_at > s.expires_at))
      s.expires_at = r.sandbox_expires_at
    if (r.decision === 'allow') s.allowed++
    else s.denied++
  }
  const out: SeenSandbox[] = []
  for (const { lastDetail, ...s } of seen.values()) {
    const lapsed = s.expires_at !== null ? Date.parse(s.expires_at) <= nowMs : lastDetail === 'expired'
    out.push({ ...s, state: s.revoked ? 'revoked' : lapsed ? 'expired' : 'active' })
  }
  return out.sort((a, b) => b.last_seen.localeCompare(a.last_seen))
}
