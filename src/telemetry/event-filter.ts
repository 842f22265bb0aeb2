import type { TelemetryRecord } from './events.js'

/**
 * THE event filter: which records a query selects, wherever the records are (the in-memory ring,
 * the Redis stream, a live SSE stream). PURE. Parsing the query string is admin/event-query.ts's
 * job; the analyst page applies the same rules to the rows it holds (a test holds them to agree).
 *
 *  - `decision` and `reason` look at decision records only, so setting either excludes close and
 *    approval records.
 *  - `agent` and `host` match any record that carries the field (decision, close, approval).
 *    `host` is exact, or `*.suffix` for any subdomain of `suffix` at any depth, never the apex
 *    (the policy's wildcard meaning).
 *  - `since` is inclusive, `until` exclusive, on the record's own `time`.
 *  - `sandbox` (an id) and `labels` (each `[key, value]` must hold) match decision and close records
 *    of sandbox credentials (SPEC §9); `anySandbox` selects every such record.
 */
export interface EventFilter {
  readonly decision?: 'allow' | 'deny'
  readonly agent?: string
  /** Normalised: an exact host, or `*.suffix`. */
  readonly host?: string
  readonly reason?: string
  readonly since?: Date
  readonly until?: Date
  readonly sandbox?: string
  readonly labels?: ReadonlyArray<readonly [string, string]>
  /** Records of sandbox credentials only (GET /api/sandboxes; no query parameter sets it). */
  readonly anySandbox?: boolean
}

/** The sandbox part of a filter: no sandbox filter, or a sandbox record with that id and every label. */
function sandboxMatches(record: TelemetryRecord, q: EventFilter): boolean {
  if (q.sandbox === undefined && q.labels === undefined && q.anySandbox !== true) return true
  if (record.event === 'approval' || record.sandbox === undefined) return false
  if (q.sandbox !== undefined && record.sandbox !== q.sandbox) return false
  const labels = record.labels ?? {}
  for (const [k, v] of q.labels ?? []) if (!Object.hasOwn(labels, k) || labels[k] !== v) return false
  return true
}

type HostFilter =
  { readonly kind: 'exact'; readonly host: string } | { readonly kind: 'suffix'; readonly suffix: string }

/** Compile a `host` filter value: `*.suffix` or an exact host. */
function hostFilter(host: string): HostFilter {
  return host.startsWith('*.') ? { kind: 'suffix', suffix: host.slice(2) } : { kind: 'exact', host }
}

function hostMatches(filter: string, host: string | null): boolean {
  if (host === null) return false
  const f = hostFilter(filter)
  return f.kind === 'exact' ? host === f.host : host.endsWith(`.${f.suffix}`)
}

/** Does a record pass the filter? */
export function matchesFilter(record: TelemetryRecord, q: EventFilter): boolean {
  if (q.decision !== undefined || q.reason !== undefined) {
    if (record.event !== 'decision') return false
    if (q.decision !== undefined && record.decision !== q.decision) return false
    if (q.reason !== undefined && record.reason !== q.reason) return false
  }
  if (q.agent !== undefined && record.agent !== q.agent) return false
  if (q.host !== undefined && !hostMatches(q.host, record.host)) return false
  if (!sandboxMatches(record, q)) return false
  if (q.since !== undefined || q.until !== undefined) {
    const t = Date.parse(record.time)
    if (q.since !== undefined && !(t >= q.since.getTime())) return false
    if (q.until !== undefined && !(t < q.until.getTime())) return false
  }
  return true
}
