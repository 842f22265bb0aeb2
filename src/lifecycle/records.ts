/**
 * Decision records as the policy lifecycle tools read them (`suggest`, `replay`, GET /api/suggest).
 * The admin API and the Redis stream hand over records in the SPEC §4 shape already; a Portcullis
 * log has them one per line, as JSON (`level` first, then the record) or as ECS
 * (`telemetry.log.format: ecs`, telemetry/log-sink.ts toEcs), mixed with operational lines that are
 * not records. PURE.
 */
import { isReason } from '../policy/reasons.js'
import { ECS_EXTRAS, type DecisionRecord, type TelemetryRecord } from '../telemetry/events.js'

/** The decision record on one log line, or null for anything else (operational lines, close records, junk). */
export function parseLogLine(line: string): DecisionRecord | null {
  const r = readLogLine(line)
  return typeof r === 'string' ? null : r
}

/**
 * One log line read: its decision record; `other` for a line a log holds besides them (an
 * operational line, a close record: a JSON object that is not a decision; a blank line); or
 * `unreadable` (not JSON, or a decision whose fields do not check out).
 */
export function readLogLine(line: string): DecisionRecord | 'other' | 'unreadable' {
  const text = line.trim()
  if (text === '') return 'other'
  if (!text.startsWith('{')) return 'unreadable'
  let obj: unknown
  try {
    obj = JSON.parse(text)
  } catch {
    return 'unreadable'
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return 'unreadable'
  const o = obj as Record<string, unknown>
  const record =
    o.event === 'decision' ? asDecisionRecord(o) : field(o, 'event.action') === 'decision' ? fromEcs(o) : 'other'
  return record ?? 'unreadable'
}

/** A decision record from an object in the SPEC shape, checked field by field; null when it is not one. */
export function asDecisionRecord(o: Record<string, unknown>): DecisionRecord | null {
  if (o.event !== 'decision') return null
  const ok =
    typeof o.id === 'string' &&
    typeof o.time === 'string' &&
    !Number.isNaN(Date.parse(o.time)) &&
    (o.agent === null || typeof o.agent === 'string') &&
    typeof o.method === 'string' &&
    typeof o.host === 'string' &&
    typeof o.port === 'number' &&
    (o.path === null || o.path === undefined || typeof o.path === 'string') &&
    (o.decision === 'allow' || o.decision === 'deny') &&
    typeof o.reason === 'string' &&
    isReason(o.reason)
  if (!ok) return null
  const { level: _level, ...rest } = o
  return { path: null, rule: null, tls: null, address: null, would_deny: false, ...rest } as DecisionRecord
}

/** An ECS field, flat (`"url.path"`, as toEcs writes it) or nested (`url: { path }`, as other shippers do). */
function field(o: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(o, name)) return o[name]
  let cur: unknown = o
  for (const part of name.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/** The inverse of log-sink.ts toEcs for decision records. */
export function fromEcs(o: Record<string, unknown>): DecisionRecord | null {
  const outcome = field(o, 'event.outcome')
  const scheme = field(o, 'url.scheme')
  const tls = field(o, 'tls.handling')
  const mode = field(o, 'portcullis.mode')
  const detail = str(field(o, 'portcullis.detail'))
  const record = asDecisionRecord({
    time: field(o, '@timestamp'),
    id: field(o, 'event.id'),
    event: 'decision',
    agent: str(field(o, 'user.name')),
    src: str(field(o, 'source.address')) ?? str(field(o, 'source.ip')) ?? '',
    method: field(o, 'http.request.method'),
    scheme: scheme === 'http' || scheme === 'https' ? scheme : 'http',
    host: field(o, 'destination.domain'),
    port: field(o, 'destination.port'),
    path: str(field(o, 'url.path')),
    tls: tls === 'tunnel' || tls === 'intercept' ? tls : null,
    decision: outcome === 'success' ? 'allow' : 'deny',
    reason: field(o, 'event.reason'),
    rule: str(field(o, 'rule.id')),
    mode: mode === 'audit' ? 'audit' : 'enforce',
    would_deny: field(o, 'portcullis.would_deny') === true,
    address: str(field(o, 'destination.ip')),
    ...(detail === null ? {} : { detail }),
    ...extrasFromEcs(o),
  })
  return record
}

/** The optional record fields toEcs writes as `portcullis.<name>` (ECS_EXTRAS), back under their names. */
function extrasFromEcs(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const name of ECS_EXTRAS) {
    const v = field(o, `portcullis.${name}`)
    if (v !== undefined) out[name] = v
  }
  return out
}

/** Is this telemetry record a decision (from the admin API or Redis, which also carry close and approval records)? */
export function isDecision(r: TelemetryRecord): r is DecisionRecord {
  return r.event === 'decision'
}

/** How many requests a record stands for: itself and the denials folded into it (telemetry/denial-fold.ts). */
export function requestsOf(r: DecisionRecord): number {
  return 1 + (typeof r.repeats === 'number' && r.repeats > 0 ? r.repeats : 0)
}
