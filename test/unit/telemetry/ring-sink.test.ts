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

t.test('records come back whole: long ones, non-ASCII text, across chunks and overwrites', async (t) => {
  const ring = createRingSink(1500)
  const long = (id: string): TelemetryRecord =>
    ({ id, event: 'decision', decision: 'allow', path: `/${'x'.repeat(2000)}` }) as unknown as TelemetryRecord
  const wide = (id: string): TelemetryRecord =>
    ({
      id,
      event: 'decision',
      decision: 'allow',
      path: `/${'é'.repeat(300)}`,
      agent: 'ağent-✓',
    }) as unknown as TelemetryRecord
  // 3,000 records through a ring of 1,500: every slot (two chunks) written twice, kinds of record mixed.
  for (let i = 0; i < 3000; i++) ring.write(i % 3 === 0 ? long(`l${i}`) : i % 3 === 1 ? wide(`w${i}`) : close(`c${i}`))
  const first = ring.snapshot()
  t.equal(first.length, 1500)
  t.same(first[0], { id: 'l1500', event: 'decision', decision: 'allow', path: `/${'x'.repeat(2000)}` })
  t.same(first[1], { id: 'w1501', event: 'decision', decision: 'allow', path: `/${'é'.repeat(300)}`, agent: 'ağent-✓' })
  t.same(first[1499], { id: 'c2999', event: 'close' })
  // A slot overwritten after a snapshot answers with its new record, not the one parsed before.
  ring.write(close('c3000'))
  const second = ring.snapshot()
  t.same(second[0], first[1])
  t.same(second[1499], { id: 'c3000', event: 'close' })
  t.equal(second[1], first[2], 'a record not overwritten is parsed once and kept')
})
