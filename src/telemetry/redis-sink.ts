import type { Logger } from 'pino'
import { createRedisClient, type RedisClient } from '../redis/client.js'
import { encodeStreamEntry } from '../redis/stream-entry.js'
import { redactRedisUrl } from '../redis/url.js'
import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'

/**
 * Redis stream sink (SPEC §4): `write()` only enqueues into a bounded buffer;
 * a flusher sends batches (one script call running `XADD stream MAXLEN ~ maxlen * …` per record) while
 * Redis is connected. A batch that fails stays queued and is retried after
 * reconnection (a batch whose reply was lost is resent, skipping the records the stream's tail
 * already holds: RESEND_SCAN). When the buffer is full the oldest queued records are dropped and
 * counted, never silently lost.
 */
export interface RedisSinkOptions {
  /** `redis://`, `rediss://`, `redis+cluster://h:p[,h:p]` or `rediss+cluster://…`. */
  readonly url: string
  readonly stream: string
  readonly maxlen: number
  readonly bufferMax?: number
  readonly batchMax?: number
  /** Treat a `redis://` URL as a cluster seed node. */
  readonly cluster?: boolean
  readonly log: Logger
  readonly onDrop?: (n: number) => void
  /** Wait before resending after a reply error while connected (e.g. OOM). */
  readonly retryMs?: number
  /** This instance's id, written as the entry's `instance` field (so a tail can skip its own records). */
  readonly instance?: string
}

export interface RedisSink extends Sink {
  backlog(): number
  dropped(): number
  connected(): boolean
  /** Why the connection is down, as its last error said (`ECONNREFUSED`, `WRONGPASS …`); null while up or unsaid. */
  downReason(): string | null
  /** Try to send everything buffered now; resolves when the buffer is empty or a send fails (never hangs while down). */
  flush(): Promise<void>
  /** Flush (bounded), then disconnect. What could not be sent is counted as dropped and logged. */
  close(): Promise<void>
  readonly client: RedisClient
}

const XADD_BATCH = 'portcullisXaddBatch'
/**
 * KEYS: stream. ARGV: maxlen, how many of the stream's newest entries to look through for records
 * already there (0: none), then per record: its field count and the fields. Adds records in order,
 * skipping one whose `id` is among those entries (a resend of a batch that landed before its reply was
 * lost), and stops at the first that Redis refuses; returns { added or skipped, error or false }, so
 * the caller resends only what was not done.
 */
const XADD_BATCH_SCRIPT = `
local maxlen = ARGV[1]
local scan = tonumber(ARGV[2])
local seen = {}
if scan > 0 then
  for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', scan)) do
    local f = entry[2]
    for j = 1, #f - 1, 2 do
      if f[j] == 'id' then seen[f[j + 1]] = true break end
    end
  end
end
local i = 3
local added = 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local id = nil
  for j = i + 1, i + n - 1, 2 do
    if ARGV[j] == 'id' then id = ARGV[j + 1] break end
  end
  if not (scan > 0 and id and seen[id]) then
    local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, i + 1, i + n))
    if type(ok) == 'table' and ok.err then return { added, ok.err } end
  end
  i = i + 1 + n
  added = added + 1
end
return { added, false }
`
/**
 * Entries a resend looks through for its records: those of the batch that may have landed, and what
 * other instances wrote since (their backlogs after the same outage). Past this a copy may remain.
 */
const RESEND_SCAN = 10_000
type WithBatch<T> = T & { [XADD_BATCH]: (stream: string, ...args: (string | number)[]) => Promise<unknown> }

/** FIFO over a fixed array: O(1) push and shift, no reallocation on the data path. */
class Queue<T> {
  private readonly buf: (T | undefined)[]
  private head = 0
  length = 0
  constructor(capacity: number) {
    this.buf = new Array<T | undefined>(capacity)
  }
  push(v: T): void {
    this.buf[(this.head + this.length) % this.buf.length] = v
    this.length++
  }
  shift(): T | undefined {
    if (this.length === 0) return undefined
    const v = this.buf[this.head]
    this.buf[this.head] = undefined
    this.head = (this.head + 1) % this.buf.length
    this.length--
    return v
  }
}

/** The code (ECONNREFUSED) or else the first line of Redis's own message (a timeout, WRONGPASS): never the URL. */
function describeRedisError(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : err instanceof Error ? err.message.split('\n')[0]?.slice(0, 120) : undefined
}

export function createRedisSink(opts: RedisSinkOptions): RedisSink {
  const bufferMax = Math.max(1, opts.bufferMax ?? 100_000)
  const batchMax = Math.max(1, opts.batchMax ?? 500)
  const retryMs = opts.retryMs ?? 1000
  const maxlen = String(opts.maxlen)
  const log = opts.log
  const where = redactRedisUrl(opts.url)
  const queue = new Queue<TelemetryRecord>(bufferMax)
  /** The batch being sent, or one that failed and waits for a retry; counted in the backlog. */
  let pending: TelemetryRecord[] = []
  /** The pending batch was sent without a reply: some of it may be in the stream already. */
  let unsure = false
  let droppedTotal = 0
  let up = false
  let downLogged = false
  // One warning per episode of a full buffer (not per reconnection: a paused Redis reconnects while the
  // buffer is still full); the episode ends, with the count, when the backlog has drained.
  let droppingLogged = false
  let droppedInEpisode = 0
  let writeErrorLogged = false
  let closed = false
  let scheduled = false
  let running: Promise<void> | null = null
  let retryTimer: NodeJS.Timeout | null = null
  /** Which connection is up (+1 on each 'ready'): a timeout is a hang only on the connection it was sent on. */
  let connection = 0
  const client = createRedisClient(opts.url, opts.cluster)
  client.defineCommand(XADD_BATCH, { numberOfKeys: 1, lua: XADD_BATCH_SCRIPT })

  const drop = (n: number): void => {
    droppedTotal += n
    droppedInEpisode += n
    opts.onDrop?.(n)
    if (!droppingLogged) {
      droppingLogged = true
      log.warn(
        { code: 'PC_TELEMETRY_DROPPING', redis: where, buffer_max: bufferMax },
        'telemetry buffer full; dropping the oldest records until Redis catches up',
      )
    }
  }

  /** The last connection error, described; kept across the 'close' that follows it. */
  let downReason: string | null = null
  const markDown = (err?: unknown): void => {
    up = false
    if (err !== undefined) downReason = describeRedisError(err) ?? downReason
    if (downLogged || closed) return
    downLogged = true
    log.warn(
      { code: 'PC_REDIS_DOWN', redis: where, error: downReason ?? undefined, backlog: backlog() },
      'Redis telemetry unavailable; buffering records',
    )
  }

  // Every client emits 'error' on connection failures; an unhandled one would crash the process.
  client.on('error', (err: unknown) => markDown(err))
  client.on('close', () => markDown())
  client.on('ready', () => {
    connection += 1
    up = true
    downLogged = false
    downReason = null
    log.info({ code: 'PC_REDIS_UP', redis: where, backlog: backlog() }, 'Redis telemetry connected')
    schedule()
  })

  function backlog(): number {
    return queue.length + pending.length
  }

  function schedule(): void {
    if (scheduled || running !== null || !up || closed) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      void kick()
    })
  }

  function kick(): Promise<void> {
    running ??= drain().finally(() => {
      running = null
      // A record enqueued between the loop's last check and this callback would otherwise wait for the next write.
      if (queue.length > 0 && retryTimer === null) schedule()
    })
    return running
  }

  /** Send batches until the buffer is empty or a send fails. Bounded: each turn sends ≥1 record or stops. */
  async function drain(): Promise<void> {
    while (up) {
      if (pending.length === 0) {
        if (queue.length === 0) return
        const n = Math.min(batchMax, queue.length)
        for (let i = 0; i < n; i++) pending.push(queue.shift() as TelemetryRecord)
      }
      if (!(await sendPending())) return
    }
  }

  /**
   * XADD the pending batch in ONE script call (one command and one reply instead of one per record:
   * ioredis's per-command cost was most of the sink's CPU). The script is not a transaction: if it
   * fails part-way the rest of the batch is resent; one sent without a reply is resent with a look at
   * the stream's tail, so what landed is not added twice.
   */
  async function sendPending(): Promise<boolean> {
    const batch = pending
    const sentOn = connection
    const args: (string | number)[] = [maxlen, unsure ? RESEND_SCAN : 0]
    for (const r of batch) {
      const fields = encodeStreamEntry(r, opts.instance)
      args.push(fields.length, ...fields)
    }
    let firstErr: Error | null = null
    let timedOut = false
    let added = 0
    try {
      const reply = await (client as WithBatch<RedisClient>)[XADD_BATCH](opts.stream, ...args)
      added = Array.isArray(reply) && typeof reply[0] === 'number' ? reply[0] : 0
      if (added < batch.length)
        firstErr = new Error(Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : 'partial batch')
    } catch (err) {
      // No reply (disconnected, timed out): the batch may or may not have landed; it is resent, and the
      // resend skips what the stream already holds.
      firstErr = err instanceof Error ? err : new Error(String(err))
      unsure = true
      // ioredis's commandTimeout: sent, connection still up, no answer (a lost connection fails differently).
      timedOut = /timed out/i.test(firstErr.message)
    }
    pending = batch.slice(added)
    if (firstErr === null) {
      unsure = false
      writeErrorLogged = false
      if (droppingLogged && backlog() === 0) {
        log.warn(
          { code: 'PC_TELEMETRY_DROPPED', redis: where, dropped: droppedInEpisode },
          `telemetry caught up; ${droppedInEpisode} records were dropped while the buffer was full`,
        )
        droppingLogged = false
        droppedInEpisode = 0
      }
      return true
    }
    // A timeout of a command sent on an earlier connection (before an outage) says nothing about this one: resend now.
    if (timedOut && connection !== sentOn && client.status === 'ready') return true
    if (timedOut && client.status === 'ready') {
      // Connected but silent (a paused or swapping Redis): every resend on this connection would be
      // queued there and run when it wakes, one copy per timeout. Start over on a new connection and
      // resend once it is ready (skipping what landed).
      markDown(firstErr)
      client.disconnect(true)
      return false
    }
    if (client.status === 'ready') {
      // The server answered with an error (OOM, WRONGTYPE…): connected, so no 'ready' will come; retry on a timer.
      if (!writeErrorLogged) {
        writeErrorLogged = true
        log.warn(
          { code: 'PC_REDIS_WRITE_FAILED', redis: where, stream: opts.stream, error: firstErr.message.slice(0, 200) },
          'Redis refused telemetry writes; retrying',
        )
      }
      retryTimer ??= setTimeout(() => {
        retryTimer = null
        schedule()
      }, retryMs).unref()
    }
    return false
  }

  return {
    name: 'redis',
    client,
    backlog,
    dropped: () => droppedTotal,
    connected: () => up,
    downReason: () => (up ? null : downReason),
    write(record) {
      if (closed) return drop(1)
      if (backlog() >= bufferMax) {
        drop(1)
        // When the whole buffer is one in-flight batch, the newest record is the one that cannot wait.
        if (queue.length === 0) return
        queue.shift()
      }
      queue.push(record)
      schedule()
    },
    flush,
    close,
  }

  async function flush(): Promise<void> {
    // Bounded: each round empties the buffer, stops on a failure (down), or must make progress.
    for (let round = 0; round < 1 + Math.ceil(bufferMax / batchMax) && up && backlog() > 0; round++) {
      const before = backlog()
      await kick()
      if (backlog() >= before) return
    }
  }

  async function close(): Promise<void> {
    if (closed) return
    await flush()
    closed = true
    if (retryTimer) clearTimeout(retryTimer)
    const unsent = backlog()
    if (unsent > 0) {
      droppedTotal += unsent
      opts.onDrop?.(unsent)
      log.warn(
        { code: 'PC_TELEMETRY_UNSENT', redis: where, count: unsent },
        'closing with telemetry records Redis never received',
      )
    }
    try {
      if (up) await client.quit()
      else client.disconnect()
    } catch {
      client.disconnect()
    }
  }
}
