import t from 'tap'
import { createBus, type Sink } from '../../../src/telemetry/bus.js'
import { createDenialFolder, type FoldedRecord } from '../../../src/telemetry/denial-fold.js'
import type { DecisionRecord, TelemetryRecord } from '../../../src/telemetry/events.js'

const T0 = Date.UTC(2026, 11, 4, 10, 0, 0)

function denial(n: number, over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    time: new Date(T0).toISOString(),
    id: `id-${n}`,
    event: 'decision',
    agent: 'ci',
    src: '10.0.0.1:4000',
    method: 'GET',
    scheme: 'http',
    host: 'h.test',
    port: 80,
    path: '/p',
    tls: null,
    decision: 'deny',
    reason: 'denied_path',
    rule: null,
    mode: 'enforce',
    would_deny: false,
    address: null,
    ...over,
  }
}

function setup(now: { ms: number }) {
  const bus = createBus()
  const recorded: TelemetryRecord[] = []
  bus.subscribe({ name: 'test', write: (r) => recorded.push(r) })
  const counted: TelemetryRecord[] = []
  const countAll: Sink = { name: 'metrics', write: (r) => counted.push(r) }
  const folder = createDenialFolder(bus, countAll, { perSecond: 3, now: () => now.ms })
  t.teardown(() => folder.close())
  return { folder, recorded, counted }
}

t.test('past the per-second allowance, identical denials of one source fold into one record', async (t) => {
  const now = { ms: T0 }
  const { folder, recorded, counted } = setup(now)
  for (let i = 0; i < 10; i++) folder.publish(denial(i, { src: `10.0.0.1:${4000 + i}` }))
  t.equal(counted.length, 10, 'metrics see every decision')
  t.same(
    recorded.map((r) => r.id),
    ['id-0', 'id-1', 'id-2'],
    'the first three are recorded at once',
  )
  now.ms += 1000
  folder.flush()
  t.equal(recorded.length, 4)
  t.match(recorded[3] as FoldedRecord, { id: 'id-9', path: '/p', repeats: 6 }, 'the last stands for the other six')
  t.equal(folder.folded, 6)
})

t.test('other sources, agents and reasons have allowances of their own', async (t) => {
  const now = { ms: T0 }
  const { folder, recorded } = setup(now)
  for (let i = 0; i < 3; i++) {
    folder.publish(denial(i))
    folder.publish(denial(10 + i, { src: '10.0.0.2:1' }))
    folder.publish(denial(20 + i, { agent: 'other' }))
    folder.publish(denial(30 + i, { reason: 'denied_no_rule' }))
  }
  t.equal(recorded.length, 12)
})

t.test('one request among decoys keeps its own record: only identical denials fold', async (t) => {
  const now = { ms: T0 }
  const { folder, recorded } = setup(now)
  for (let i = 0; i < 10; i++) folder.publish(denial(i, { host: 'decoy.test' }))
  folder.publish(denial(100, { host: 'exfil.test', path: '/steal' }))
  folder.publish(denial(101, { method: 'POST', host: 'decoy.test' }))
  folder.publish(denial(102, { host: 'decoy.test', port: 8080 }))
  for (let i = 0; i < 10; i++) folder.publish(denial(200 + i, { reason: 'denied_auth_invalid', agent: 'nobody' }))
  folder.publish(denial(300, { reason: 'denied_auth_invalid', agent: 'ci-42' }))
  t.same(
    recorded.map((r) => r.id).filter((id) => !/^id-[0-9]$|^id-20[0-9]$/.test(id)),
    ['id-100', 'id-101', 'id-102', 'id-300'],
    'another host, method, port, or claimed agent is its own record at once',
  )
})

t.test("audit mode's would-be denials are never folded: those requests went out", async (t) => {
  const now = { ms: T0 }
  const { folder, recorded } = setup(now)
  for (let i = 0; i < 10; i++) folder.publish(denial(i, { mode: 'audit', would_deny: true }))
  t.equal(recorded.length, 10)
})

t.test('allows and close records are never folded, and a new second starts a new allowance', async (t) => {
  const now = { ms: T0 }
  const { folder, recorded } = setup(now)
  for (let i = 0; i < 5; i++) folder.publish({ ...denial(i), decision: 'allow', reason: 'allowed' })
  t.equal(recorded.length, 5)
  for (let i = 0; i < 5; i++) folder.publish(denial(i))
  now.ms += 1000
  folder.publish(denial(99))
  t.same(
    recorded.slice(5).map((r) => r.id),
    ['id-0', 'id-1', 'id-2', 'id-4', 'id-99'],
    "the old second's fold is written when the next one starts",
  )
})

t.test('close writes out what is still folded', async (t) => {
  const now = { ms: T0 }
  const { folder, recorded } = setup(now)
  for (let i = 0; i < 5; i++) folder.publish(denial(i))
  folder.close()
  t.match(recorded.at(-1), { id: 'id-4', repeats: 1 })
})
