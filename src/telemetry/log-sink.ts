import { pino, type DestinationStream, type Logger } from 'pino'
import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'
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

export interface FlushableDestination extends DestinationStream {
  flushSync(): void
}

/**
 * sonic-boom, asynchronous and batched: one write(2) per ~64 KiB instead of one per line (8 KiB batches
 * cost ~5 µs more per forwarded request in threadpool writes, bench/focus.ts d), and a line
 * waits at most FLUSH_MS (an operator tailing the log sees it within 0.1 s). Lines reach it as
 * Buffers (contentMode 'buffer'): given strings, sonic-boom measures the UTF-8 length of its whole
 * pending buffer on every write (up to 16 KiB, flattened each time), ~4 µs a record line on the data
 * path; as Buffers each line costs one UTF-8 encode. Everything else is sonic-boom's: partial writes,
 * EAGAIN on pipes, and a synchronous flush of what is pending when the process exits (pino registers it).
 * `dest` is a file descriptor or path (stdout in production).
 */
export function bufferedDestination(dest: number | string = 1): FlushableDestination {
  const sonic = pino.destination({
    dest,
    sync: false,
    minLength: BATCH_BYTES,
    // A batch is written whole (sonic-boom's default cap, 16 KiB, must exceed minLength).
    maxWrite: 4 * BATCH_BYTES,
    periodicFlush: FLUSH_MS,
    contentMode: 'buffer',
  })
  // Looked up on each call: pino replaces write with a no-op once the reader is gone (EPIPE).
  const out = sonic as unknown as { write(data: Buffer): boolean; flushSync(): void }
  return {
    write: (line: string) => out.write(Buffer.from(line, 'utf8')),
    flushSync: () => out.flushSync(),
  }
}

export function createLoggers(level: string, dest?: DestinationStream, format: 'json' | 'ecs' = 'json'): Loggers {
  const destination = dest ?? bufferedDestination()
  // ECS names the level `log.level`; the SPEC's JSON lines keep pino's `level`.
  const formatters = { level: (label: string) => (format === 'ecs' ? { 'log.level': label } : { level: label }) }
  const ops = pino(
    { level, redact: REDACT, formatters, timestamp: pino.stdTimeFunctions.isoTime, base: { component: 'portcullis' } },
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
  }
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
