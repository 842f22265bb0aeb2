import { pino, type DestinationStream, type Logger } from 'pino'
import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'

/** Secrets must never enter a log object at all; this list is only the safety net. */
const REDACT = ['proxy-authorization', 'authorization', '*.token', 'token', 'headers.authorization', 'headers["proxy-authorization"]']

export interface Loggers {
  /** Operational log: start-up, reload, Redis up/down, internal errors. */
  readonly ops: Logger
  /** Record lines: exactly the SPEC §4 shape plus pino's level. */
  readonly records: Logger
  flush(): void
}

/** Log lines are written in batches of this many bytes, or every FLUSH_MS, whichever comes first. */
const BATCH_BYTES = 8 * 1024
const FLUSH_MS = 100

export function createLoggers(level: string, dest?: DestinationStream, format: 'json' | 'ecs' = 'json'): Loggers {
  // Asynchronous and batched: one write(2) per ~8 KiB (sonic-boom needs it below maxWrite, 16 KiB) instead of
  // one per record keeps log I/O off the data path's budget; periodicFlush bounds how long a line can wait
  // (an operator tailing the log sees it within 0.1 s).
  const destination = dest ?? pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, periodicFlush: FLUSH_MS })
  // ECS names the level `log.level`; the SPEC's JSON lines keep pino's `level`.
  const formatters = { level: (label: string) => (format === 'ecs' ? { 'log.level': label } : { level: label }) }
  const ops = pino({ level, redact: REDACT, formatters, timestamp: pino.stdTimeFunctions.isoTime, base: { component: 'portcullis' } }, destination)
  // Records carry their own ISO `time`; pino's would be a duplicate key. No redaction: records are
  // built field by field in events.ts and carry no header or credential (redaction cost a third of
  // the record's serialisation, on every request).
  const records = pino({ level, formatters, timestamp: false, base: null }, destination)
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
      'portcullis.approval': { id: r.approval_id, request_id: r.request_id, scope: r.scope, expires_at: r.expires_at, actor: r.actor },
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

export function createLogSink(records: Logger, format: 'json' | 'ecs'): Sink {
  return {
    name: 'log',
    write(r) {
      const obj = format === 'ecs' ? toEcs(r) : r
      if (r.event === 'decision' && r.decision === 'deny') {
        if (r.reason === 'denied_internal_error') records.error(obj)
        else records.warn(obj)
      } else {
        records.info(obj)
      }
    },
  }
}
