import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'

export interface RingSink extends Sink {
  /** Oldest first. */
  snapshot(): TelemetryRecord[]
  readonly size: number
  /** Records pushed out by newer ones of their kind, by kind (for metrics). */
  readonly evicted: Readonly<Record<RingKind, number>>
}

export type RingKind = 'denial' | 'other'

interface Ring {
  readonly buf: ({ seq: number; record: TelemetryRecord } | undefined)[]
  next: number
  count: number
}

/**
 * Bounded in-memory rings behind the admin API, the page and `portcullis blocked` (without Redis):
 * denials are what an analyst reviews and an approval is made from, so they have a ring of their own
 * (`capacity`) that allows and close records, however many, never push them out of; everything else
 * shares a second ring of the same capacity. O(1) per record; a snapshot merges both in publish order.
 */
export function createRingSink(capacity: number): RingSink {
  const size = Math.max(1, capacity)
  const rings: Record<RingKind, Ring> = {
    denial: { buf: new Array(size), next: 0, count: 0 },
    other: { buf: new Array(size), next: 0, count: 0 },
  }
  const evicted: Record<RingKind, number> = { denial: 0, other: 0 }
  let seq = 0
  const oldestFirst = (r: Ring): { seq: number; record: TelemetryRecord }[] => {
    const out: { seq: number; record: TelemetryRecord }[] = []
    const start = (r.next - r.count + r.buf.length) % r.buf.length
    for (let i = 0; i < r.count; i++) {
      const e = r.buf[(start + i) % r.buf.length]
      if (e) out.push(e)
    }
    return out
  }
  return {
    name: 'ring',
    evicted,
    get size() {
      return rings.denial.count + rings.other.count
    },
    write(record) {
      const kind: RingKind = record.event === 'decision' && record.decision === 'deny' ? 'denial' : 'other'
      const r = rings[kind]
      r.buf[r.next] = { seq: seq++, record }
      r.next = (r.next + 1) % r.buf.length
      if (r.count < r.buf.length) r.count++
      else evicted[kind]++
    },
    snapshot() {
      const a = oldestFirst(rings.denial)
      const b = oldestFirst(rings.other)
      const out: TelemetryRecord[] = []
      let i = 0
      let j = 0
      while (i < a.length || j < b.length) {
        const x = a[i]
        const y = b[j]
        if (y === undefined || (x !== undefined && x.seq < y.seq)) {
          out.push((x as { record: TelemetryRecord }).record)
          i++
        } else {
          out.push(y.record)
          j++
        }
      }
      return out
    },
  }
}
