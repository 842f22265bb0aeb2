/**
 * The query language of `GET /api/events` and `/api/events/stream`, and its
 * evaluation over the in-memory ring. PURE: `now` is a parameter.
 *
 * Which records a query selects is telemetry/event-filter.ts (the same filter
 * runs over the ring, the Redis stream and the live stream). Here:
 *  - `since` and `until` take an ISO time or a duration (`15m`, `1h`, `7d`)
 *    meaning "now minus that"; `host` is normalised (`*.` kept).
 *  - Paging: newest first; `cursor` is the previous page's `next_cursor` and
 *    the next page continues strictly before it. From the ring it is a record
 *    id (ULIDs sort by time); from Redis, a stream entry id.
 */
import { parseDurationMs } from '../config/duration.js'
import { normalizeHost } from '../net/host.js'
import { isReason, type Reason } from '../policy/reasons.js'
import { matchesFilter, type EventFilter } from '../telemetry/event-filter.js'
import type { TelemetryRecord } from '../telemetry/events.js'

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000

export interface EventQuery extends EventFilter {
  readonly reason?: Reason
  readonly limit: number
  readonly cursor?: string
}

export interface EventPage {
  readonly records: TelemetryRecord[]
  readonly nextCursor: string | null
}

const KNOWN_PARAMS = new Set([
  'decision',
  'agent',
  'host',
  'reason',
  'sandbox',
  'label',
  'since',
  'until',
  'limit',
  'cursor',
])
/** Repeatable: every label given must hold. */
const REPEATABLE = new Set(['label'])
const MAX_LABEL_FILTERS = 8
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/i
const STREAM_ID = /^\d{1,20}-\d{1,20}$/
/** Each half of a stream id is an unsigned 64-bit number; Redis refuses a larger one (not an outage). */
const MAX_U64 = 2n ** 64n - 1n
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/i
const AGENT = /^[A-Za-z0-9._:@-]{1,100}$/

type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string }

function ok<T>(value: T): Parsed<T> {
  return { ok: true, value }
}
function bad<T>(error: string): Parsed<T> {
  return { ok: false, error }
}

/** Parse the query string; the error names the parameter and what it accepts. */
export function parseEventQuery(params: URLSearchParams, now: Date): EventQuery | { error: string } {
  for (const key of new Set(params.keys())) {
    if (!KNOWN_PARAMS.has(key)) return { error: `unknown parameter '${key}'; use ${[...KNOWN_PARAMS].join(', ')}` }
    if (!REPEATABLE.has(key) && params.getAll(key).length > 1)
      return { error: `parameter '${key}' given more than once` }
  }
  const get = (k: string): string | undefined => {
    const v = params.get(k)
    return v === null || v === '' ? undefined : v
  }
  const parts = {
    decision: parseDecision(get('decision')),
    agent: parseAgent(get('agent')),
    host: parseHostParam(get('host')),
    reason: parseReason(get('reason')),
    sandbox: parseSandbox(get('sandbox')),
    labels: parseLabels(params.getAll('label')),
    since: parseTime('since', get('since'), now),
    until: parseTime('until', get('until'), now),
    limit: parseLimit(get('limit')),
    cursor: parseCursor(get('cursor')),
  }
  const q: Record<string, unknown> = {}
  for (const [key, p] of Object.entries(parts)) {
    if (!p.ok) return { error: p.error }
    if (p.value !== undefined) q[key] = p.value
  }
  const query = q as unknown as EventQuery
  if (query.since && query.until && query.since.getTime() >= query.until.getTime())
    return { error: 'since must be earlier than until' }
  return query
}

export function isQueryError(q: EventQuery | { error: string }): q is { error: string } {
  return 'error' in q
}

function parseDecision(v: string | undefined): Parsed<'allow' | 'deny' | undefined> {
  if (v === undefined || v === 'allow' || v === 'deny') return ok(v)
  return bad(`decision must be 'allow' or 'deny'`)
}

function parseAgent(v: string | undefined): Parsed<string | undefined> {
  if (v === undefined || AGENT.test(v)) return ok(v)
  return bad('agent must be an agent id (letters, digits, . _ : @ -; at most 100 characters)')
}

function parseSandbox(v: string | undefined): Parsed<string | undefined> {
  if (v === undefined || ULID.test(v)) return ok(v?.toUpperCase())
  return bad('sandbox must be a sandbox id (the 26-character id it was issued with)')
}

function parseLabels(values: readonly string[]): Parsed<Array<[string, string]> | undefined> {
  const given = values.filter((v) => v !== '')
  if (given.length === 0) return ok(undefined)
  if (given.length > MAX_LABEL_FILTERS) return bad(`at most ${MAX_LABEL_FILTERS} label filters`)
  const out: Array<[string, string]> = []
  for (const v of given) {
    const eq = v.indexOf('=')
    if (eq <= 0) return bad(`label must be key=value, got '${v.slice(0, 60)}'`)
    out.push([v.slice(0, eq), v.slice(eq + 1)])
  }
  return ok(out)
}

function parseHostParam(v: string | undefined): Parsed<string | undefined> {
  if (v === undefined) return ok(undefined)
  const wildcard = v.startsWith('*.')
  const host = normalizeHost(wildcard ? v.slice(2) : v)
  if (host === null) return bad(`host '${v.slice(0, 100)}' is not a valid host name, IP address or '*.domain'`)
  return ok(wildcard ? `*.${host}` : host)
}

function parseReason(v: string | undefined): Parsed<Reason | undefined> {
  if (v === undefined || isReason(v)) return ok(v)
  return bad(`reason '${v.slice(0, 60)}' is not a reason code (see docs/reasons.md)`)
}

function parseTime(name: string, v: string | undefined, now: Date): Parsed<Date | undefined> {
  if (v === undefined) return ok(undefined)
  const ms = parseDurationMs(v)
  // A duration reaching before 1970 (`999999999w`) means from the start: no record, and no Redis stream id, is older.
  if (ms !== null) return ok(new Date(Math.max(0, now.getTime() - ms)))
  const t = ISO_TIME.test(v) ? Date.parse(v) : NaN
  if (Number.isNaN(t)) return bad(`${name} must be an ISO time (2026-11-25T10:00:00Z) or a duration ago (15m, 1h, 7d)`)
  return ok(new Date(t))
}

function parseLimit(v: string | undefined): Parsed<number> {
  if (v === undefined) return ok(DEFAULT_LIMIT)
  const n = /^\d{1,7}$/.test(v) ? Number(v) : NaN
  if (!(n >= 1 && n <= MAX_LIMIT)) return bad(`limit must be an integer from 1 to ${MAX_LIMIT}`)
  return ok(n)
}

function parseCursor(v: string | undefined): Parsed<string | undefined> {
  if (v === undefined) return ok(undefined)
  const kind = cursorKind(v)
  if (kind === null) return bad('cursor must be the next_cursor of a previous page')
  return ok(kind === 'record' ? v.toUpperCase() : v)
}

/** A ring page's cursor is a record id (ULID); a Redis page's is a stream entry id (`1732528800000-0`). */
export function cursorKind(v: string): 'record' | 'stream' | null {
  if (ULID.test(v)) return 'record'
  if (STREAM_ID.test(v) && v.split('-').every((part) => BigInt(part) <= MAX_U64)) return 'stream'
  return null
}

/**
 * One page of the ring (oldest first) for `q`, newest first by id. A page
 * never ends in the middle of records sharing one id (a connection's decision
 * and close records share it), because the cursor continues strictly before
 * the last id: such a group moves whole to the next page, unless it alone
 * fills the page, in which case the page grows to hold it.
 */
export function queryRing(records: readonly TelemetryRecord[], q: EventQuery): EventPage {
  const hits: { r: TelemetryRecord; i: number }[] = []
  records.forEach((r, i) => {
    if ((q.cursor === undefined || r.id < q.cursor) && matchesFilter(r, q)) hits.push({ r, i })
  })
  // Newest first; equal ids keep the later-published record first.
  hits.sort((a, b) => (a.r.id < b.r.id ? 1 : a.r.id > b.r.id ? -1 : b.i - a.i))
  if (hits.length <= q.limit) return { records: hits.map((h) => h.r), nextCursor: null }
  let end = q.limit
  const boundaryId = hits[end - 1]?.r.id
  if (hits[end]?.r.id === boundaryId) {
    let start = end - 1
    while (start > 0 && hits[start - 1]?.r.id === boundaryId) start--
    if (start > 0) end = start
    else while (end < hits.length && hits[end]?.r.id === boundaryId) end++
  }
  const page = hits.slice(0, end).map((h) => h.r)
  return { records: page, nextCursor: end < hits.length ? (page[page.length - 1]?.id ?? null) : null }
}
