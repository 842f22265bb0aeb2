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

export interface ReadEventsOptions {
  /** How long one call may scan before it answers with what it has and a cursor (default READ_BUDGET_MS). */
  readonly budgetMs?: number
}

/**
 * Entries one script call scans. Redis runs a script alone, so a call stays short (a few ms for
 * this many); between calls other clients' commands, and this process's event loop, run.
 */
const SCAN_BATCH = 1000
/**
 * How long one call keeps scanning for matches. A sparse filter (denials under a flood of allowed
 * traffic, one agent's denials under another's) scans on, batch by batch, to the stream's start:
 * the stream is bounded by telemetry.redis.maxlen, and its default million entries scan in a few
 * seconds. Only a longer scan (a larger maxlen, a slow Redis) stops here and answers with a cursor.
 */
export const READ_BUDGET_MS = 10_000
/** Stream ids come from the Redis server's clock, record times from the proxy's: allow this much disagreement. */
const CLOCK_SKEW_MS = 10 * 60_000
const STREAM_ID = /^\d{1,20}-\d{1,20}$/

/**
 * KEYS: stream. ARGV: end, start (XREVRANGE bounds), how many entries to scan, how many candidates
 * are wanted, then the decision, reason and agent the flat fields must hold ('' for any): the test
 * of entryMayMatch (stream-entry.ts), run where the entries are, so the many that cannot match never
 * cross the network; and text the record's JSON must contain ('' for any: sandboxNeedle). Returns
 * { candidates (XREVRANGE's shape), the last id scanned or '', 1 when the range holds nothing beyond it }.
 */
const SCAN_SCRIPT = `
local entries = redis.call('XREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
local wanted = tonumber(ARGV[4])
local names = { 'decision', 'reason', 'agent' }
local out = {}
local last = ''
local full = false
for _, e in ipairs(entries) do
  last = e[1]
  local f = e[2]
  local keep = true
  for k = 1, 3 do
    local want = ARGV[4 + k]
    if want ~= '' then
      local got = nil
      for j = 1, #f - 1, 2 do
        if f[j] == names[k] then got = f[j + 1] break end
      end
      if got ~= want then keep = false break end
    end
  end
  if keep and ARGV[8] ~= '' then
    local r = ''
    for j = 1, #f - 1, 2 do
      if f[j] == 'r' then r = f[j + 1] break end
    end
    keep = string.find(r, ARGV[8], 1, true) ~= nil
  end
  if keep then
    out[#out + 1] = e
    if #out >= wanted then full = true break end
  end
end
local done = 0
if not full and #entries < tonumber(ARGV[3]) then done = 1 end
return { out, last, done }
`

/**
 * Text that every record `q` selects by sandbox has in its JSON, or '' when `q` does not select by
 * sandbox: a sandbox's records are JSON.stringify'd (record-json.ts), so the key and a sandbox id (26
 * characters that need no escaping) appear as written here. Only a pre-filter: matchesFilter decides.
 */
function sandboxNeedle(q: RedisEventQuery): string {
  if (q.sandbox !== undefined) return `"sandbox":${JSON.stringify(q.sandbox)}`
  return q.anySandbox === true || q.labels !== undefined ? '"sandbox":"' : ''
}

/** The entry's record when it passes `q` (flat fields first, so most misses parse no JSON). */
function matchesEntry(fields: StreamFields, q: RedisEventQuery): TelemetryRecord | null {
  if (!entryMayMatch(fields, q)) return null
  const r = decodeStreamEntry(fields)
  return r !== null && matchesFilter(r, q) ? r : null
}

/**
 * One page of the stream, newest first (by arrival), scanned in batches
 * (SCAN_SCRIPT) until `limit` records match, or the scan passes `since`, or
 * it reaches the stream's start; or, on a stream too long to scan in
 * READ_BUDGET_MS, when the budget is spent. `since` bounds the scan: a record
 * reaches the stream no earlier than its own time (less CLOCK_SKEW_MS between
 * the proxy's and Redis's clocks). `until` cannot (records buffered during an
 * outage arrive late), so it only filters. nextCursor is null when nothing
 * older remains to be scanned.
 */
export async function readEvents(
  client: RedisClient,
  stream: string,
  q: RedisEventQuery,
  opts: ReadEventsOptions = {},
): Promise<{ records: TelemetryRecord[]; nextCursor: string | null }> {
  if (q.cursor !== undefined && !STREAM_ID.test(q.cursor))
    throw new Error(`readEvents: cursor must be a stream id, got ${q.cursor.slice(0, 40)}`)
  // Nothing comes before the first id: Redis would refuse the interval, which is no outage.
  if (q.cursor !== undefined && /^0+-0+$/.test(q.cursor)) return { records: [], nextCursor: null }
  const start = q.since ? `${Math.max(0, q.since.getTime() - CLOCK_SKEW_MS)}-0` : '-'
  const deadline = performance.now() + (opts.budgetMs ?? READ_BUDGET_MS)
  const flat = [q.decision ?? '', q.reason ?? '', q.agent ?? '', sandboxNeedle(q)]
  let end = q.cursor !== undefined ? `(${q.cursor}` : '+'
  const records: TelemetryRecord[] = []
  for (;;) {
    const wanted = q.limit - records.length
    const [candidates, last, done] = (await client.eval(
      SCAN_SCRIPT,
      1,
      stream,
      end,
      start,
      SCAN_BATCH,
      wanted,
      ...flat,
    )) as [Array<[string, string[]]>, string, number]
    for (const [id, fields] of candidates) {
      const r = matchesEntry(fields, q)
      if (r !== null && records.push(r) >= q.limit) return { records, nextCursor: id }
    }
    if (done === 1 || last === '') return { records, nextCursor: null }
    end = `(${last}`
    if (performance.now() >= deadline) return { records, nextCursor: last }
  }
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
