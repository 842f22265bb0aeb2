import type { EventFilter } from '../telemetry/event-filter.js'
import type { TelemetryRecord } from '../telemetry/events.js'
import { recordJson } from '../telemetry/record-json.js'

/**
 * The codec of the telemetry stream's entries (SPEC §4 Redis): the record as JSON under `r`, plus a
 * few flat fields so readers can skip entries without parsing JSON. The sink encodes here; every
 * reader (the paged reader, the lookup by id, the tail) decodes here. PURE.
 *
 * Flat fields: `event`, `id`, `instance` (the writer, when known), `agent` (when not null), and on
 * decision records `decision` and `reason`.
 */
export type StreamFields = readonly string[]

export function encodeStreamEntry(r: TelemetryRecord, instance?: string): string[] {
  // The record's text as the log line and the ring have it (record-json.ts).
  const f = ['r', recordJson(r), 'event', r.event, 'id', r.id]
  if (instance !== undefined) f.push('instance', instance)
  if (r.agent !== null) f.push('agent', r.agent)
  if (r.event === 'decision') f.push('decision', r.decision, 'reason', r.reason)
  return f
}

/** One field of an entry's flat `[name, value, …]` list. */
export function entryField(fields: StreamFields, name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]
  return undefined
}

/** The record of an entry, or null when it holds none this version can read (the stream has many writers). */
export function decodeStreamEntry(fields: StreamFields): TelemetryRecord | null {
  let r: unknown
  try {
    r = JSON.parse(entryField(fields, 'r') ?? 'null')
  } catch {
    return null
  }
  return r !== null && typeof r === 'object' ? (r as TelemetryRecord) : null
}

/**
 * False when the flat fields alone show the entry's record cannot pass `q` (so its JSON need not be
 * parsed); true means "decode it and ask matchesFilter". Never false for a record that would pass.
 */
export function entryMayMatch(fields: StreamFields, q: EventFilter): boolean {
  if (q.decision !== undefined && entryField(fields, 'decision') !== q.decision) return false
  if (q.reason !== undefined && entryField(fields, 'reason') !== q.reason) return false
  if (q.agent !== undefined && entryField(fields, 'agent') !== q.agent) return false
  return true
}
