import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'
import { recordJson } from './record-json.js'

export interface RingSink extends Sink {
  /** Oldest first. */
  snapshot(): TelemetryRecord[]
  readonly size: number
  /** Records pushed out by newer ones of their kind, by kind (for metrics). */
  readonly evicted: Readonly<Record<RingKind, number>>
}

export type RingKind = 'denial' | 'other'

/** Bytes per slot of a ring's arena: a decision record is 250–400 bytes of JSON; longer ones are kept as strings. */
const SLOT_BYTES = 384
/** Slots per arena chunk: chunks are allocated as the ring fills, so memory follows use, not capacity. */
const CHUNK_SLOTS = 1024

/**
 * One ring, kept as columns: the publish order, the record's JSON as UTF-8 in a slot of a Buffer
 * chunk (the rare record longer than a slot as a string), and the record parsed back (filled by a
 * snapshot, dropped when the slot is overwritten). A record lives here for thousands of requests:
 * kept as objects on the JS heap, every one was copied twice by the young-generation GC, promoted, and
 * swept later by the old generation's. Off the heap, scavenges of a forwarding proxy are shorter
 * (bench/focus.ts d with --trace-gc: 1.8 → 1.2 ms on average), and each one is a stall for every
 * request in flight: wrk's p99 went from 2.6 to 1.5 × Squid's in `npm run bench -- --only d`. The JSON
 * is the log line's own (record-json.ts), so it is not serialised twice when records are logged.
 */
class Ring {
  readonly seq: Float64Array
  /** UTF-8 bytes in the slot, or -1 when the record is in `long`. */
  readonly bytes: Int32Array
  readonly arena: Buffer[] = []
  readonly long = new Map<number, string>()
  readonly parsed = new Map<number, TelemetryRecord>()
  next = 0
  count = 0

  constructor(readonly capacity: number) {
    this.seq = new Float64Array(capacity)
    this.bytes = new Int32Array(capacity)
  }

  /** Whether an older record was pushed out. */
  push(seq: number, json: string): boolean {
    const i = this.next
    this.seq[i] = seq
    this.parsed.delete(i)
    this.long.delete(i)
    // A UTF-16 unit is at most 3 UTF-8 bytes: short text fits without measuring.
    if (json.length * 3 <= SLOT_BYTES || Buffer.byteLength(json, 'utf8') <= SLOT_BYTES) {
      this.bytes[i] = this.chunk(i).write(json, (i % CHUNK_SLOTS) * SLOT_BYTES, SLOT_BYTES, 'utf8')
    } else {
      this.bytes[i] = -1
      this.long.set(i, json)
    }
    this.next = (i + 1) % this.capacity
    if (this.count < this.capacity) {
      this.count++
      return false
    }
    return true
  }

  private chunk(slot: number): Buffer {
    const c = Math.floor(slot / CHUNK_SLOTS)
    return (this.arena[c] ??= Buffer.allocUnsafeSlow(CHUNK_SLOTS * SLOT_BYTES))
  }

  /** The i-th oldest slot's index. */
  slot(i: number): number {
    return (this.next - this.count + this.capacity + i) % this.capacity
  }

  record(slot: number): TelemetryRecord {
    let r = this.parsed.get(slot)
    if (r === undefined) {
      const n = this.bytes[slot] as number
      const at = (slot % CHUNK_SLOTS) * SLOT_BYTES
      const text = n < 0 ? (this.long.get(slot) as string) : this.chunk(slot).toString('utf8', at, at + n)
      r = JSON.parse(text) as TelemetryRecord
      this.parsed.set(slot, r)
    }
    return r
  }
}

/**
 * Bounded in-memory rings behind the admin API, the page and `portcullis blocked` (without Redis):
 * denials are what an analyst reviews and an approval is made from, so they have a ring of their own
 * (`capacity`) that allows and close records, however many, never push them out of; everything else
 * shares a second ring of the same capacity. O(1) per record; a snapshot merges both in publish order.
 */
export function createRingSink(capacity: number): RingSink {
  const size = Math.max(1, capacity)
  const rings: Record<RingKind, Ring> = { denial: new Ring(size), other: new Ring(size) }
  const evicted: Record<RingKind, number> = { denial: 0, other: 0 }
  let seq = 0
  return {
    name: 'ring',
    evicted,
    get size() {
      return rings.denial.count + rings.other.count
    },
    write(record) {
      const kind: RingKind = record.event === 'decision' && record.decision === 'deny' ? 'denial' : 'other'
      if (rings[kind].push(seq++, recordJson(record))) evicted[kind]++
    },
    snapshot() {
      const a = rings.denial
      const b = rings.other
      const out: TelemetryRecord[] = []
      let i = 0
      let j = 0
      while (i < a.count || j < b.count) {
        const x = i < a.count ? a.slot(i) : -1
        const y = j < b.count ? b.slot(j) : -1
        if (y === -1 || (x !== -1 && (a.seq[x] as number) < (b.seq[y] as number))) {
          out.push(a.record(x))
          i++
        } else {
          out.push(b.record(y))
          j++
        }
      }
      return out
    },
  }
}
