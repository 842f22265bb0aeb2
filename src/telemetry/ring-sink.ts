import type { Sink } from './bus.js'
import type { TelemetryRecord } from './events.js'

export interface RingSink extends Sink {
  /** Oldest first. */
  snapshot(): TelemetryRecord[]
  readonly size: number
}

/** Bounded in-memory ring behind the admin API; O(1) per record. */
export function createRingSink(capacity: number): RingSink {
  const buf: (TelemetryRecord | undefined)[] = new Array(Math.max(1, capacity))
  let next = 0
  let count = 0
  return {
    name: 'ring',
    get size() {
      return count
    },
    write(record) {
      buf[next] = record
      next = (next + 1) % buf.length
      if (count < buf.length) count++
    },
    snapshot() {
      const out: TelemetryRecord[] = []
      const start = (next - count + buf.length) % buf.length
      for (let i = 0; i < count; i++) {
        const r = buf[(start + i) % buf.length]
        if (r) out.push(r)
      }
      return out
    },
  }
}
