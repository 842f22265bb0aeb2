import type { RedisClient } from '../redis/client.js'
import { decodeStreamEntry, entryField, entryMayMatch, type StreamFields } from '../redis/stream-entry.js'
import { matchesFilter, type EventFilter } from './event-filter.js'
import type { DecisionRecord, TelemetryRecord } from './events.js'

/** Queries over the Redis telemetry stream written by redis-sink.ts (GET /api/events, `portcullis blocked`). */
export interface RedisEventQuery extends EventFilter {
  readonly limit: number
  /** A stream id (`1732528800000-0`) from a previous page's nextCursor; the page continues strictly before it. */
  readonly cursor?: string
}

const READ_PAGE = 500
/** Entries examined per call at most; a sparse filter returns a short page with a cursor rather than scanning 1M entries. */
const READ_SCAN_MAX = 20_000
/** Stream ids come from the Redis server's clock, record times from the proxy's: allow this much disagreement. */
const CLOCK_SKEW_MS = 10 * 60_000
const STREAM_ID = /^\d{1,20}-\d{1,20}$/

/** The entry's record when it passes `q` (flat fields first, so most misses parse no JSON). */
function matchesEntry(fields: StreamFields, q: RedisEventQuery): TelemetryRecord | null {
  if (!entryMayMatch(fields, q)) return null
  const r = decodeStreamEntry(fields)
  return r !== null && matchesFilter(r, q) ? r : null
}

/**
 * One page of the stream, newest first (by arrival), read with XREVRANGE in
 * pages. `since` also bounds the scan: a record reaches the stream no earlier
 * than its own time (less CLOCK_SKEW_MS between the proxy's and Redis's clocks). `until` cannot (records buffered during an outage arrive
 * late), so it only filters. nextCursor is null when the stream is exhausted.
 */
export async function readEvents(
  client: RedisClient,
  stream: string,
  q: RedisEventQuery,
): Promise<{ records: TelemetryRecord[]; nextCursor: string | null }> {
  if (q.cursor !== undefined && !STREAM_ID.test(q.cursor))
    throw new Error(`readEvents: cursor must be a stream id, got ${q.cursor.slice(0, 40)}`)
  // Nothing comes before the first id: Redis would refuse the interval, which is no outage.
  if (q.cursor !== undefined && /^0+-0+$/.test(q.cursor)) return { records: [], nextCursor: null }
  const start = q.since ? `${Math.max(0, q.since.getTime() - CLOCK_SKEW_MS)}-0` : '-'
  let end = q.cursor !== undefined ? `(${q.cursor}` : '+'
  const records: TelemetryRecord[] = []
  let lastId: string | null = null
  for (let scanned = 0; scanned < READ_SCAN_MAX;) {
    const entries = await client.xrevrange(stream, end, start, 'COUNT', READ_PAGE)
    for (const [id, fields] of entries) {
      scanned++
      lastId = id
      const r = matchesEntry(fields, q)
      if (r !== null && records.push(r) >= q.limit) return { records, nextCursor: id }
    }
    if (entries.length < READ_PAGE || lastId === null) return { records, nextCursor: null }
    end = `(${lastId}`
  }
  return { records, nextCursor: lastId }
}

/** Entries examined at most when looking one record up by id. */
const FIND_SCAN_MAX = 100_000
const FIND_PAGE = 1000
/** A record reaches the stream at most this long before its own time says (clock skew)... */
const FIND_BEFORE_MS = 60_000
/** ...and the scan gives up this long after it (records buffered through a longer outage are not found). */
const FIND_AFTER_MS = 10 * 60_000

/**
 * The decision record with this id, or null: read forward from just before
 * `madeAtMs` (a ULID carries its time), so the cost does not grow with how
 * many records arrived since. Entries are matched on their flat `id` field
 * before any JSON is parsed. Bounded in entries and in time.
 */
export async function findDecisionById(
  client: RedisClient,
  stream: string,
  id: string,
  madeAtMs: number,
): Promise<DecisionRecord | null> {
  let start = `${Math.max(0, madeAtMs - FIND_BEFORE_MS)}-0`
  const stopAt = madeAtMs + FIND_AFTER_MS
  for (let scanned = 0; scanned < FIND_SCAN_MAX;) {
    const entries = await client.xrange(stream, start, '+', 'COUNT', FIND_PAGE)
    for (const [entryId, fields] of entries) {
      scanned++
      if (Number(entryId.slice(0, entryId.indexOf('-'))) > stopAt) return null
      if (entryField(fields, 'id') !== id || entryField(fields, 'event') !== 'decision') continue
      const r = decodeStreamEntry(fields)
      if (r !== null && r.event === 'decision' && r.id === id) return r
    }
    const last = entries.at(-1)
    if (entries.length < FIND_PAGE || last === undefined) return null
    start = `(${last[0]}`
  }
  return null
}
