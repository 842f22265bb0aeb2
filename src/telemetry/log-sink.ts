import cluster from 'node:cluster'
import { fstatSync } from 'node:fs'
import { pino, type DestinationStream, type Logger } from 'pino'
import type { Sink } from './bus.js'
import { ECS_EXTRAS, type CloseRecord, type DecisionRecord, type TelemetryRecord } from './events.js'
import { recordJson } from './record-json.js'

/** Secrets must never enter a log object at all; this list is only the safety net. */
const REDACT = [
  'proxy-authorization',
  'authorization',
  '*.token',
  'token',
  'headers.authorization',
  'headers["proxy-authorization"]',
]

export interface Loggers {
  /** Operational log: start-up, reload, Redis up/down, internal errors. */
  readonly ops: Logger
  /** Record lines: exactly the SPEC §4 shape plus the level, on the operational log's destination. */
  readonly records: RecordLog
  flush(): void
}

export type RecordLevel = 'info' | 'warn' | 'error'

export interface RecordLog {
  /** One JSON line: `{"level":…` (ECS: `"log.level"`) then the record's own fields in its order. Dropped below the log level. */
  write(level: RecordLevel, record: object): void
}

/** Log lines are written in batches of this many bytes, or every FLUSH_MS, whichever comes first. */
const BATCH_BYTES = 64 * 1024
const FLUSH_MS = 100
/** A batch's buffer: a batch is shipped once it holds BATCH_BYTES, so a line up to the rest always fits. */
const CHUNK_BYTES = 2 * BATCH_BYTES

export interface FlushableDestination extends DestinationStream {
  flushSync(): void
}

/**
 * A write of at most this many bytes to a pipe is atomic (POSIX PIPE_BUF; 4096 on Linux): writers
 * sharing it (the workers of `workers: N`, all on the primary's stdout) never cut into each other's.
 */
const PIPE_BUF = 4096

/** Whether `dest` is a pipe or a socket (stdout under a supervisor, a container runtime, `| jq`). */
function isPipeOrSocket(dest: number | string): boolean {
  if (typeof dest !== 'number') return false
  try {
    const st = fstatSync(dest)
    return st.isFIFO() || st.isSocket()
  } catch {
    return false
  }
}

/**
 * `lines` (whole lines) cut at line ends into pieces of at most PIPE_BUF bytes, each written on its
 * own: two workers writing 64 KiB batches to one pipe interleaved mid-line (4 broken lines of
 * 130,857 under wrk with `workers: 2 | node check.mjs`). A single line longer than PIPE_BUF goes
 * alone and cannot be atomic; records keep paths and hosts short (RECORDED_PATH_CHARS).
 */
function* atomicPieces(lines: Buffer): Generator<Buffer> {
  let start = 0
  while (lines.length - start > PIPE_BUF) {
    let end = lines.lastIndexOf(0x0a, start + PIPE_BUF - 1)
    if (end < start) {
      end = lines.indexOf(0x0a, start + PIPE_BUF)
      if (end === -1) end = lines.length - 1
    }
    yield lines.subarray(start, end + 1)
    start = end + 1
  }
  if (start < lines.length) yield lines.subarray(start)
}

/** Destinations with lines not yet handed to sonic-boom: shipped before anything else runs at exit. */
const pendingAtExit = new Set<{ ship(): void }>()
let exitHookInstalled = false

/**
 * Log lines are copied, as they come, into one off-heap buffer per batch, and each batch goes to
 * sonic-boom whole: at BATCH_BYTES, every FLUSH_MS, on `flushSync`, and at exit. A line costs one
 * UTF-8 copy into the buffer and no object; sonic-boom then writes each batch asynchronously with
 * one write(2). Given one Buffer per line instead, it kept each in an array until its batch was full
 * (~110 forwarded requests): one typed array made per line, held across scavenges. A loop of record
 * lines to /dev/null cost 0.77-1.32 µs of CPU a line that way, rising as the old generation grew,
 * and 0.32-0.39 µs this way (in bench/focus.ts d, within the noise: 58 vs 57 µs/op). Left to
 * sonic-boom: partial writes, EAGAIN on pipes, EPIPE (pino turns writing off once the reader is gone)
 * and the synchronous write of what it holds when the process exits, which pino registers; the
 * lines still here are handed over before that (an 'exit' listener put first). `dest` is a file
 * descriptor or path (stdout in production).
 */
export function bufferedDestination(dest: number | string = 1): FlushableDestination {
  const atomic = isPipeOrSocket(dest)
  const sonic = pino.destination({
    dest,
    sync: false,
    // What sonic-boom holds below minLength waits for a flush: a shipped batch (BATCH_BYTES) goes at
    // once, the rest (a partial batch, the end of one cut for a pipe) with the next flush.
    minLength: atomic ? PIPE_BUF - 1 : BATCH_BYTES,
    // It joins what it holds into writes of up to maxWrite: on a pipe, no more than is atomic.
    maxWrite: atomic ? PIPE_BUF : 4 * BATCH_BYTES,
    contentMode: 'buffer',
  })
  // Looked up on each call: pino replaces write and flushSync with no-ops once the reader is gone (EPIPE).
  const out = sonic as unknown as { write(data: Buffer): boolean; flush(): void; flushSync(): void }
  let chunk: Buffer | null = null
  let used = 0
  /** Flush ticks still due: a partial batch may stay in sonic-boom while a write is in flight. */
  let flushesDue = 0
  const batch = {
    ship(): void {
      if (chunk === null || used === 0) return
      const full = chunk.subarray(0, used)
      // Not reused: sonic-boom holds it until written; an idle destination then holds no buffer at all.
      chunk = null
      used = 0
      flushesDue = 2
      if (atomic) for (const piece of atomicPieces(full)) out.write(piece)
      else out.write(full)
    },
  }
  pendingAtExit.add(batch)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.prependListener('exit', () => {
      for (const b of pendingAtExit) b.ship()
    })
  }
  setInterval(() => {
    batch.ship()
    if (flushesDue === 0) return
    flushesDue--
    try {
      out.flush()
    } catch {
      // A destination destroyed under us: nothing more can be written.
    }
  }, FLUSH_MS).unref()
  return {
    write(line: string): boolean {
      chunk ??= Buffer.allocUnsafeSlow(CHUNK_BYTES)
      // A UTF-16 unit is at most 3 UTF-8 bytes: short lines fit without measuring.
      if (line.length * 3 > CHUNK_BYTES - used) {
        const bytes = Buffer.byteLength(line, 'utf8')
        if (bytes > CHUNK_BYTES - used) {
          batch.ship()
          if (bytes > CHUNK_BYTES) return out.write(Buffer.from(line, 'utf8'))
          chunk ??= Buffer.allocUnsafeSlow(CHUNK_BYTES)
        }
      }
      used += chunk.write(line, used, 'utf8')
      if (used >= BATCH_BYTES) batch.ship()
      return true
    },
    flushSync(): void {
      batch.ship()
      out.flushSync()
    },
  }
}

export function createLoggers(level: string, dest?: DestinationStream, format: 'json' | 'ecs' = 'json'): Loggers {
  const destination = dest ?? bufferedDestination()
  // ECS names the level `log.level`; the SPEC's JSON lines keep pino's `level`.
  const formatters = { level: (label: string) => (format === 'ecs' ? { 'log.level': label } : { level: label }) }
  // A worker's lines (workers: N) say which process wrote them: the pid the primary's PC_WORKER_* lines name.
  const base = { component: 'portcullis', ...(cluster.isWorker ? { pid: process.pid } : {}) }
  // ECS lines (records and operational lines alike) carry `@timestamp` and `message`, which every
  // ECS document needs; pino's own names are `time` and `msg`.
  const ops = pino(
    format === 'ecs'
      ? { level, redact: REDACT, formatters, timestamp: ecsTimestamp, messageKey: 'message', base }
      : { level, redact: REDACT, formatters, timestamp: pino.stdTimeFunctions.isoTime, base },
    destination,
  )
  const records = recordLog(ops, destination, format)
  return {
    ops,
    records,
    flush() {
      const d = destination as { flushSync?: () => void }
      try {
        d.flushSync?.()
      } catch {
        // flushSync throws when the async destination is not ready yet; nothing is lost then.
      }
    },
  }
}

const ecsTimestamp = (): string => `,"@timestamp":"${new Date().toISOString()}"`

/**
 * Records skip pino's serialiser: it builds each line field by field as a rope of small strings
 * that must then be flattened, ~20 µs of a forwarded request's CPU for its two lines
 * (bench/focus.ts d: 219 µs a request with record lines, 177 without). One JSON.stringify of the
 * record is a flat string with the same bytes: pino puts the level first, then the object's own
 * keys in order, and escapes strings as JSON does. Records carry their own ISO `time` and no
 * header or credential (events.ts builds them field by field), so neither pino's timestamp nor
 * its redaction applies; the level threshold is the operational logger's.
 */
function recordLog(ops: Logger, destination: DestinationStream, format: 'json' | 'ecs'): RecordLog {
  const key = format === 'ecs' ? 'log.level' : 'level'
  const open = { info: `{"${key}":"info",`, warn: `{"${key}":"warn",`, error: `{"${key}":"error",` }
  return {
    write(level, record) {
      if (!ops.isLevelEnabled(level)) return
      const json = recordJson(record)
      destination.write(json.length > 2 ? `${open[level]}${json.slice(1)}\n` : `${open[level].slice(0, -1)}}\n`)
    },
  }
}

/** Elastic Common Schema names for the same facts (telemetry.log.format: ecs). */
export function toEcs(r: TelemetryRecord): Record<string, unknown> {
  if (r.event === 'approval') {
    return {
      '@timestamp': r.time,
      'event.kind': 'event',
      'event.action': `approval_${r.action}`,
      'event.id': r.id,
      'event.reason': r.reason,
      'user.name': r.agent,
      'destination.domain': r.host,
      'destination.port': r.port,
      'url.path': r.path,
      'portcullis.approval': {
        id: r.approval_id,
        request_id: r.request_id,
        scope: r.scope,
        expires_at: r.expires_at,
        actor: r.actor,
        ...(r.sandbox === undefined ? {} : { sandbox: r.sandbox }),
      },
    }
  }
  if (r.event === 'close') {
    return {
      '@timestamp': r.time,
      'event.kind': 'event',
      'event.action': 'close',
      'event.id': r.id,
      'event.duration': r.duration_ms * 1e6,
      'user.name': r.agent,
      'destination.domain': r.host,
      'source.bytes': r.bytes_up,
      'destination.bytes': r.bytes_down,
      ...ecsExtras(r),
    }
  }
  return {
    '@timestamp': r.time,
    'event.kind': 'event',
    'event.action': 'decision',
    'event.id': r.id,
    'event.outcome': r.decision === 'allow' ? 'success' : 'failure',
    'event.reason': r.reason,
    'rule.id': r.rule,
    'user.name': r.agent,
    'source.address': r.src,
    'source.ip': r.src.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''),
    'http.request.method': r.method,
    'url.scheme': r.scheme,
    'url.path': r.path,
    'destination.domain': r.host,
    'destination.port': r.port,
    'destination.ip': r.address,
    'tls.handling': r.tls,
    'portcullis.mode': r.mode,
    'portcullis.would_deny': r.would_deny,
    ...(r.detail === undefined ? {} : { 'portcullis.detail': r.detail }),
    ...ecsExtras(r),
  }
}

function ecsExtras(r: DecisionRecord | CloseRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const name of ECS_EXTRAS) {
    const v = (r as unknown as Record<string, unknown>)[name]
    if (v !== undefined) out[`portcullis.${name}`] = v
  }
  return out
}

export function createLogSink(records: RecordLog, format: 'json' | 'ecs'): Sink {
  return {
    name: 'log',
    write(r) {
      const obj = format === 'ecs' ? toEcs(r) : r
      if (r.event === 'decision' && r.decision === 'deny') {
        records.write(r.reason === 'denied_internal_error' ? 'error' : 'warn', obj)
      } else {
        records.write('info', obj)
      }
    },
  }
}
