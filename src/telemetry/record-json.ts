/**
 * A record's JSON text, made once per record: the bus hands each record to every sink in turn, and
 * the ring (which keeps records as text), the log line (which writes it) and the Redis entry all need
 * the same text. Remembering the last object serialised makes the later asks free. Records are never
 * changed once published (a sink only reads them), so the object is the key.
 */
import type { CloseRecord, DecisionRecord } from './events.js'

let lastObject: object | null = null
let lastJson = ''

export function recordJson(record: object): string {
  if (record !== lastObject) {
    lastJson = serialise(record)
    lastObject = record
  }
  return lastJson
}

/**
 * The two records every request makes (a decision, then a close) in their usual shape, written by
 * hand: JSON.stringify took ~1.1 µs a decision record (bench/record-json.ts), a tenth of the proxy's
 * own JS per forwarded request; this takes under half. The text is byte for byte JSON.stringify's
 * (test/unit/telemetry/record-json.test.ts checks it against JSON.stringify on hostile strings): keys
 * in the order events.ts builds them, and strings written as they are, which is JSON.stringify's
 * text for a string with nothing it escapes. A record of any other shape (a sandbox's, a denial's
 * detail, a cut path, a folded repeat count), a value of an unexpected type, or any string with a
 * quote, a backslash, a control character or a surrogate in it, and the record is JSON.stringify'd
 * whole.
 */
function serialise(r: object): string {
  const rec = r as Record<string, unknown>
  let json: string | null = null
  if (rec.event === 'decision') {
    if (keyCount(rec) === DECISION_KEYS) json = decisionJson(rec as unknown as DecisionRecord)
  } else if (rec.event === 'close') {
    if (keyCount(rec) === CLOSE_KEYS) json = closeJson(rec as unknown as CloseRecord)
  }
  return json ?? JSON.stringify(r)
}

/** buildDecisionRecord's fields without the optional ones (events.ts). */
const DECISION_KEYS = 17
/** buildCloseRecord's fields without a sandbox's. */
const CLOSE_KEYS = 8

/** What JSON.stringify escapes in a string, or (surrogates: lone ones are escaped) may. */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/

function decisionJson(r: DecisionRecord): string | null {
  const { time, id, agent, src, method, scheme, host, port, path, tls, decision, reason, rule, mode, address } = r
  if (
    !(isText(time) && isText(id) && isText(src) && isText(method) && isText(scheme) && isText(host)) ||
    !(isText(decision) && isText(reason) && isText(mode) && isCount(port)) ||
    !(isTextOrNull(agent) && isTextOrNull(path) && isTextOrNull(tls) && isTextOrNull(rule) && isTextOrNull(address)) ||
    typeof r.would_deny !== 'boolean' ||
    ESCAPED.test(
      `${time}${id}${agent}${src}${method}${scheme}${host}${path}${tls}${decision}${reason}${rule}${mode}${address}`,
    )
  )
    return null
  return `{"time":"${time}","id":"${id}","event":"decision","agent":${quoted(agent)},"src":"${src}","method":"${method}","scheme":"${scheme}","host":"${host}","port":${port},"path":${quoted(path)},"tls":${quoted(tls)},"decision":"${decision}","reason":"${reason}","rule":${quoted(rule)},"mode":"${mode}","would_deny":${r.would_deny},"address":${quoted(address)}}`
}

function closeJson(r: CloseRecord): string | null {
  const { time, id, agent, host, bytes_up: up, bytes_down: down, duration_ms: ms } = r
  if (
    !(isText(time) && isText(id) && isText(host)) ||
    !isTextOrNull(agent) ||
    !isCount(up) ||
    !isCount(down) ||
    !isCount(ms) ||
    ESCAPED.test(`${time}${id}${agent}${host}`)
  )
    return null
  return `{"time":"${time}","id":"${id}","event":"close","agent":${quoted(agent)},"host":"${host}","bytes_up":${up},"bytes_down":${down},"duration_ms":${ms}}`
}

function isText(v: unknown): boolean {
  return typeof v === 'string'
}

function isTextOrNull(v: unknown): boolean {
  return v === null || typeof v === 'string'
}

/** A number JSON writes as String() does (NaN and the infinities become null there). */
function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v)
}

/** A string with nothing to escape, quoted; null as null. */
function quoted(v: string | null): string {
  return v === null ? 'null' : `"${v}"`
}

/** Own enumerable keys (records are plain objects): a for-in count makes no array, as Object.keys does. */
function keyCount(o: object): number {
  let n = 0
  for (const _ in o) n++
  return n
}
