import type { TelemetryRecord } from './events.js'
import type { RedisClient } from './redis-sink.js'

/** Queries over the Redis telemetry stream written by redis-sink.ts (GET /api/events, `portcullis blocked`). */
export interface RedisEventQuery {
  readonly decision?: 'allow' | 'deny'
  readonly agent?: string
  /** Exact host, or `*.suffix` for any subdomain of suffix (never the apex), as in the admin API. */
  readonly host?: string
  readonly reason?: string
  readonly since?: Date
  readonly until?: Date
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

function matchesEntry(fields: string[], q: RedisEventQuery): TelemetryRecord | null {
  const get = (k: string): string | undefined => {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === k) return fields[i + 1]
    return undefined
  }
  // Cheap checks on the flat fields before parsing the JSON (same semantics as admin/event-query.ts).
  if ((q.decision !== undefined && get('decision') !== q.decision) || (q.reason !== undefined && get('reason') !== q.reason)) return null
  if (q.agent !== undefined && get('agent') !== q.agent) return null
  let r: TelemetryRecord
  try {
    r = JSON.parse(get('r') ?? 'null') as TelemetryRecord
  } catch {
    return null
  }
  if (r === null || typeof r !== 'object') return null
  if (q.host !== undefined) {
    const h = r.host
    if (h === null || !(q.host.startsWith('*.') ? h.endsWith(q.host.slice(1)) : h === q.host)) return null
  }
  const t = Date.parse(r.time)
  if (q.since !== undefined && !(t >= q.since.getTime())) return null
  if (q.until !== undefined && !(t < q.until.getTime())) return null
  return r
}

/**
 * One page of the stream, newest first (by arrival), read with XREVRANGE in
 * pages. `since` also bounds the scan: a record reaches the stream no earlier
 * than its own time (less CLOCK_SKEW_MS between the proxy's and Redis's clocks). `until` cannot (records buffered during an outage arrive
 * late), so it only filters. nextCursor is null when the stream is exhausted.
 */
export async function readEvents(client: RedisClient, stream: string, q: RedisEventQuery): Promise<{ records: TelemetryRecord[]; nextCursor: string | null }> {
  if (q.cursor !== undefined && !STREAM_ID.test(q.cursor)) throw new Error(`readEvents: cursor must be a stream id, got ${q.cursor.slice(0, 40)}`)
  const start = q.since ? `${Math.max(0, q.since.getTime() - CLOCK_SKEW_MS)}-0` : '-'
  let end = q.cursor !== undefined ? `(${q.cursor}` : '+'
  const records: TelemetryRecord[] = []
  let lastId: string | null = null
  for (let scanned = 0; scanned < READ_SCAN_MAX; ) {
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
