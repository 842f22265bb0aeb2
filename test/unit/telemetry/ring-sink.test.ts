import t from 'tap'
import { createRingSink } from '../../../src/telemetry/ring-sink.js'
import type { TelemetryRecord } from '../../../src/telemetry/events.js'

const rec = (id: string, decision: 'allow' | 'deny'): TelemetryRecord =>
  ({ id, event: 'decision', decision }) as unknown as TelemetryRecord
const close = (id: string): TelemetryRecord => ({ id, event: 'close' }) as unknown as TelemetryRecord

t.test('denials keep a ring of their own: allows and closes never push them out', async (t) => {
  const ring = createRingSink(3)
  ring.write(rec('d1', 'deny'))
  for (let i = 0; i < 100; i++) ring.write(i % 2 ? rec(`a${i}`, 'allow') : close(`c${i}`))
  t.same(
    ring.snapshot().map((r) => r.id),
    ['d1', 'a97', 'c98', 'a99'],
    'the old denial is still there, in publish order with the newest others',
  )
  t.same(ring.evicted, { denial: 0, other: 97 })
})

t.test('each ring holds its capacity, oldest out first', async (t) => {
  const ring = createRingSink(2)
  ring.write(rec('d1', 'deny'))
  ring.write(rec('a1', 'allow'))
  ring.write(rec('d2', 'deny'))
  ring.write(rec('d3', 'deny'))
  t.same(
    ring.snapshot().map((r) => r.id),
    ['a1', 'd2', 'd3'],
  )
  t.equal(ring.size, 3)
  t.same(ring.evicted, { denial: 1, other: 0 })
})
