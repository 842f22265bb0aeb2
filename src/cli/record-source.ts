/**
 * Where `suggest` and `replay` read decision records (SPEC §10 `--source admin|redis|FILE`):
 * - `admin`: a running instance's GET /api/events (the admin client `blocked` uses), page by page;
 * - `redis`: the telemetry stream named by the config (telemetry.redis), read as the admin API reads it;
 * - a file (or `-` for stdin): a Portcullis log, JSON or ECS lines; other lines are skipped and
 *   counted, and a file with no decision record at all is an error (not an empty window).
 * Records come back oldest first, filtered by time (and agent, and to denials when asked).
 */
import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import type { RuntimeConfig } from '../config/types.js'
import { PortcullisError } from '../errors.js'
import { isDecision, readLogLine } from '../lifecycle/records.js'
import { createRedisClient, type RedisClient } from '../redis/client.js'
import { redactRedisUrl } from '../redis/url.js'
import type { DecisionRecord, TelemetryRecord } from '../telemetry/events.js'
import { readEvents } from '../telemetry/redis-events.js'
import { connectAdmin } from './admin-client.js'
import type { CliIo } from './io.js'

/** The flags of the verbs that read records here (`suggest`, `replay`): whose, when, and from where. */
export const RECORD_FLAGS = {
  agent: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  source: { type: 'string', default: 'admin' },
} as const

export interface RecordQuery {
  /** `admin`, `redis`, a log file, or `-` (stdin). */
  readonly source: string
  readonly since: Date | null
  readonly until: Date | null
  /** Only denials (`suggest`), or every decision (`replay`). */
  readonly denialsOnly: boolean
  readonly agent?: string | undefined
  /** `--admin URL` and `--config F`, for the admin client. */
  readonly admin?: string | undefined
  readonly configFlag?: string | undefined
  readonly config: RuntimeConfig
  readonly env: NodeJS.ProcessEnv
}

export interface RecordBatch {
  /** Oldest first. */
  readonly records: DecisionRecord[]
  /** Where they came from, for the report's first line. */
  readonly from: string
  /** More matched than MAX_RECORDS; the newest MAX_RECORDS were kept, the older ones never read. */
  readonly truncated: boolean
  /** Lines of a log that were not records (not JSON, or a decision whose fields do not check out). */
  readonly unreadableLines: number
}

/**
 * At most this many records are held (a week of a busy proxy is cut, never an out-of-memory). A
 * verb that vouches for the whole window (`replay --fail-on-new-denials`) fails when it was cut.
 */
export const MAX_RECORDS = 500_000
const PAGE = 1000
const REDIS_READY_MS = 5000

/** What stderr says about a read: records left unread, lines that were not records. */
export function reportReading(batch: RecordBatch, verb: string, io: CliIo): void {
  if (batch.truncated) io.stderr(`portcullis ${verb}: only the newest ${batch.records.length} records were read\n`)
  const n = batch.unreadableLines
  if (n > 0) io.stderr(`portcullis ${verb}: skipped ${n} unreadable line${n === 1 ? '' : 's'} of ${batch.from}\n`)
}

export async function readDecisionRecords(q: RecordQuery): Promise<RecordBatch> {
  if (q.source === 'admin') return readAdmin(q)
  if (q.source === 'redis') return readRedis(q)
  return readLog(q)
}

function wanted(r: DecisionRecord, q: RecordQuery): boolean {
  if (q.denialsOnly && r.decision !== 'deny') return false
  if (q.agent !== undefined && r.agent !== q.agent) return false
  const t = Date.parse(r.time)
  return !(q.since !== null && t < q.since.getTime()) && !(q.until !== null && t >= q.until.getTime())
}

/**
 * The admin API as a source of records: one it cannot be read from (unreachable, a refused token) is an
 * input error like an unreadable file (exit 2), never replay's 1, which a CI gate reads as a new denial.
 */
async function readAdmin(q: RecordQuery): Promise<RecordBatch> {
  try {
    return await readAdminPages(q)
  } catch (err) {
    if (!(err instanceof PortcullisError) || err.code !== 'PC_ERR_ADMIN_REQUEST') throw err
    throw new PortcullisError('PC_ERR_RECORDS_UNREADABLE', `cannot read records from the admin API: ${err.message}`, {
      cause: err,
    })
  }
}

async function readAdminPages(q: RecordQuery): Promise<RecordBatch> {
  const client = await connectAdmin({ admin: q.admin, config: q.configFlag }, q.env)
  const params = new URLSearchParams({ limit: String(PAGE) })
  if (q.denialsOnly) params.set('decision', 'deny')
  if (q.agent !== undefined) params.set('agent', q.agent)
  if (q.since !== null) params.set('since', q.since.toISOString())
  if (q.until !== null) params.set('until', q.until.toISOString())
  const newestFirst: DecisionRecord[] = []
  let source = 'memory'
  for (let cursor: string | null = null; ;) {
    if (cursor !== null) params.set('cursor', cursor)
    const page: { events: TelemetryRecord[]; next_cursor: string | null; source?: string } = await client.request(
      'GET',
      `/api/events?${params.toString()}`,
    )
    source = page.source ?? source
    for (const r of page.events) if (isDecision(r) && wanted(r, q)) newestFirst.push(r)
    cursor = page.next_cursor
    if (cursor === null || newestFirst.length > MAX_RECORDS) break
  }
  const truncated = newestFirst.length > MAX_RECORDS
  return {
    records: newestFirst.slice(0, MAX_RECORDS).reverse(),
    from: `admin API ${client.baseUrl} (${source})`,
    truncated,
    unreadableLines: 0,
  }
}

async function readRedis(q: RecordQuery): Promise<RecordBatch> {
  const { url, stream } = q.config.telemetry.redis
  if (url === null)
    throw new PortcullisError('PC_ERR_USAGE', `--source redis: ${q.config.file} sets no telemetry.redis.url`)
  const client = createRedisClient(url)
  client.on('error', () => undefined)
  try {
    await ready(client, url)
    const newestFirst: DecisionRecord[] = []
    for (let cursor: string | undefined; ;) {
      const page = await readEvents(client, stream, {
        limit: PAGE,
        ...(q.denialsOnly ? { decision: 'deny' as const } : {}),
        ...(q.agent !== undefined ? { agent: q.agent } : {}),
        ...(q.since !== null ? { since: q.since } : {}),
        ...(q.until !== null ? { until: q.until } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      })
      for (const r of page.records) if (isDecision(r) && wanted(r, q)) newestFirst.push(r)
      if (page.nextCursor === null || newestFirst.length > MAX_RECORDS) break
      cursor = page.nextCursor
    }
    const truncated = newestFirst.length > MAX_RECORDS
    return {
      records: newestFirst.slice(0, MAX_RECORDS).reverse(),
      from: `Redis stream ${stream}`,
      truncated,
      unreadableLines: 0,
    }
  } catch (cause) {
    if (cause instanceof PortcullisError) throw cause
    throw new PortcullisError('PC_ERR_RECORDS_UNREADABLE', `cannot read the Redis stream ${stream}: ${String(cause)}`, {
      cause,
    })
  } finally {
    client.disconnect()
  }
}

/** The client ready, or why not: a refused connection says so at once, a silent server after REDIS_READY_MS. */
async function ready(client: RedisClient, url: string): Promise<void> {
  const timeout = AbortSignal.timeout(REDIS_READY_MS)
  const at = redactRedisUrl(url)
  try {
    await once(client, 'ready', { signal: timeout })
  } catch (err) {
    // events.once rejects with the emitter's first 'error' (a refused connection), or with the abort.
    if (timeout.aborted)
      throw new PortcullisError(
        'PC_ERR_RECORDS_UNREADABLE',
        `Redis at ${at} did not answer within ${REDIS_READY_MS / 1000} s`,
      )
    throw new PortcullisError('PC_ERR_RECORDS_UNREADABLE', `cannot reach Redis at ${at}: ${(err as Error).message}`)
  }
}

/**
 * A log line longer than this is skipped: no record comes near it (a push's refs are capped), and
 * readline kept any line whole, so a run of NULs left by a copytruncate rotation, or `--source
 * /dev/zero`, grew one string until V8 refused it (a RangeError nothing could catch).
 */
const MAX_LINE_BYTES = 16 * 1024 * 1024

/** The lines of `input` (LF or CRLF), each at most MAX_LINE_BYTES; longer ones are passed over whole. */
async function* linesOf(input: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let held: Buffer[] = []
  let heldBytes = 0
  let skipping = false
  const line = (tail: Buffer): string => {
    const whole = held.length === 0 ? tail : Buffer.concat([...held, tail])
    held = []
    heldBytes = 0
    const end = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length
    return whole.toString('utf8', 0, end)
  }
  for await (const piece of input) {
    let chunk = typeof piece === 'string' ? Buffer.from(piece) : piece
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a)) {
      if (skipping) {
        skipping = false
        held = []
        heldBytes = 0
      } else if (heldBytes + nl <= MAX_LINE_BYTES) yield line(chunk.subarray(0, nl))
      else {
        held = []
        heldBytes = 0
      }
      chunk = chunk.subarray(nl + 1)
    }
    if (skipping || chunk.length === 0) continue
    if (heldBytes + chunk.length > MAX_LINE_BYTES) {
      skipping = true
      held = []
      heldBytes = 0
      continue
    }
    held.push(Buffer.from(chunk))
    heldBytes += chunk.length
  }
  if (!skipping && heldBytes > 0) yield line(Buffer.alloc(0))
}

async function readLog(q: RecordQuery): Promise<RecordBatch> {
  const input = q.source === '-' ? process.stdin : createReadStream(q.source)
  const records: DecisionRecord[] = []
  let truncated = false
  let unreadable = 0
  let readable = 0
  try {
    for await (const line of linesOf(input)) {
      const r = readLogLine(line)
      if (r === 'unreadable') unreadable++
      if (typeof r === 'string') continue
      readable++
      if (!wanted(r, q)) continue
      records.push(r)
      // Keep the newest (a log is oldest first), trimming in batches.
      if (records.length >= 2 * MAX_RECORDS) {
        records.splice(0, records.length - MAX_RECORDS)
        truncated = true
      }
    }
  } catch (cause) {
    throw new PortcullisError(
      'PC_ERR_RECORDS_UNREADABLE',
      `cannot read ${q.source}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
      { cause },
    )
  }
  if (records.length > MAX_RECORDS) {
    records.splice(0, records.length - MAX_RECORDS)
    truncated = true
  }
  const from = q.source === '-' ? 'standard input' : `log file ${q.source}`
  // Not a Portcullis log at all (`--source /etc/passwd`): an empty result would read as "no traffic".
  if (readable === 0 && unreadable > 0)
    throw new PortcullisError(
      'PC_ERR_RECORDS_UNREADABLE',
      `${from} holds no Portcullis decision record (${unreadable} unreadable line${unreadable === 1 ? '' : 's'}): is it a Portcullis log (JSON or ECS lines)?`,
    )
  records.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0))
  return { records, from, truncated, unreadableLines: unreadable }
}
