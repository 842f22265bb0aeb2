import t from 'tap'
import { createLimiter, type Limiter } from '../../../src/limits/limiter.js'
import type { UsageTotals } from '../../../src/limits/shared-usage.js'
import { previousWeight } from '../../../src/limits/windows.js'
import type { AgentLimits } from '../../../src/policy/types.js'
import { createLimitBackend } from '../../helpers/limit-backend.js'
import { seededRandom } from '../../helpers/seeded-random.js'

/**
 * What sharing one budget between instances guarantees, shown on simulated instances: real
 * limiters (ledger, share arithmetic, local buckets), a backend that does what the sync script does
 * (test/helpers/limit-backend.ts, held to the Lua by redis-limit-script.test.ts), a clock that only
 * the simulation moves, and seeded random traffic. Deterministic: a failure replays exactly.
 */

const STEP_MS = 5

interface SimOptions {
  readonly seed: number
  readonly instances: number
  readonly agents: readonly string[]
  readonly rpm: number
  readonly minutes: number
  /** Sync interval and reply latency. */
  readonly intervalMs: number
  readonly latencyMs: number
  /** Chance per step, instance and agent of a request; varied per second so traffic comes in bursts. */
  readonly load: number
  /** Only these instances (by index) receive requests; default all. */
  readonly busy?: readonly number[]
  /** Spans of the simulation (ms from its start, [from, to)) without requests: agents go idle and come back. */
  readonly pauses?: ReadonlyArray<readonly [number, number]>
}

interface SimResult {
  /** Admission times per agent, every instance. */
  readonly admitted: ReadonlyMap<string, number[]>
  /** The most the backend ever counted (used and held) for an agent's minute. */
  readonly mostCounted: number
  readonly start: number
  /** When the last request arrived, and when an instance last reported anything (an idle cluster stops). */
  readonly lastRequestMs: number
  readonly lastReportMs: number
}

function simulate(o: SimOptions): SimResult {
  const rand = seededRandom(o.seed)
  const limits: AgentLimits = { requestsPerMinute: o.rpm, concurrentConnections: null, bytesPerDay: null }
  // Sharing since well before the first minute (as a running cluster would be).
  const start = Date.UTC(2026, 10, 25, 10, 0, 0)
  let now = start - 10_000
  const backend = createLimitBackend()
  const ids = Array.from({ length: o.instances }, (_, i) => `i${i}`)
  const sims = ids.map((id, i) => {
    const limiter: Limiter = createLimiter({ now: () => now })
    const sim = {
      id,
      limiter,
      nextSyncAt: (start + (i * o.intervalMs) / o.instances) | 0,
      wanted: false,
      inflight: null as null | { readonly at: number; readonly totals: UsageTotals[] },
    }
    limiter.shared.onSyncWanted(() => (sim.wanted = true))
    limiter.shared.setShared(true)
    limiter.shared.setInstances(o.instances)
    return sim
  })
  now = start
  const admitted = new Map(o.agents.map((a) => [a, [] as number[]]))
  let load = o.load
  let mostCounted = 0
  let lastRequestMs = -Infinity
  let lastReportMs = -Infinity
  const paused = (at: number): boolean => (o.pauses ?? []).some(([from, to]) => at - start >= from && at - start < to)
  for (; now < start + o.minutes * 60_000; now += STEP_MS) {
    if (now % 1000 === 0) load = o.load * (rand() < 0.3 ? 4 : rand())
    for (const s of sims) {
      if (s.inflight !== null && now >= s.inflight.at) {
        s.limiter.shared.setInstances(o.instances)
        s.limiter.shared.settle(s.inflight.totals)
        s.limiter.shared.learn(backend.active(Math.floor(now / 60_000)).map((a) => ({ ...a, rpm: o.rpm })))
        s.inflight = null
      }
      if (s.inflight === null && (now >= s.nextSyncAt || s.wanted)) {
        s.wanted = false
        s.nextSyncAt = now + o.intervalMs
        const reports = s.limiter.shared.drain(now)
        if (reports.length > 0) lastReportMs = now
        const totals = backend.sync(s.id, ids, reports)
        s.inflight = { at: now + o.latencyMs, totals }
        for (const total of totals) mostCounted = Math.max(mostCounted, total.requests)
      }
      if ((o.busy !== undefined && !o.busy.includes(sims.indexOf(s))) || paused(now)) continue
      for (const agent of o.agents) {
        if (!(rand() < load)) continue
        lastRequestMs = now
        if ('ok' in s.limiter.admitRequest(agent, limits, now)) admitted.get(agent)?.push(now)
      }
    }
  }
  return { admitted, mostCounted, start, lastRequestMs, lastReportMs }
}

/** Random clusters: 1-4 instances, budgets from 1 to 1000 a minute, slow and fast syncs, light to heavy load. */
const R = seededRandom(99)
const RANDOM: SimOptions[] = Array.from({ length: 30 }, (_, i) => ({
  seed: 100 + i,
  instances: 1 + Math.floor(R() * 4),
  agents: ['a', 'b'],
  rpm: [1, 3, 10, 60, 100, 1000][Math.floor(R() * 6)] as number,
  minutes: 3,
  intervalMs: [25, 100, 250][Math.floor(R() * 3)] as number,
  latencyMs: Math.floor(R() * 60),
  load: R() * R() * 0.3,
}))

const describe = (o: SimOptions): string =>
  `${o.instances} instance(s), rpm ${o.rpm}, sync every ${o.intervalMs} ms, ${o.latencyMs} ms away (seed ${o.seed})`

/** Admissions per minute of the simulation, and the most the sliding window ever held at an admission. */
function windows(times: readonly number[], start: number, minutes: number): { perMinute: number[]; sliding: number } {
  const perMinute = Array.from({ length: minutes }, () => 0)
  let sliding = 0
  for (const x of times) {
    const m = Math.floor((x - start) / 60_000)
    perMinute[m] = (perMinute[m] ?? 0) + 1
    const previous = m > 0 ? (perMinute[m - 1] ?? 0) : 0
    sliding = Math.max(sliding, (perMinute[m] ?? 0) + previous * previousWeight(Math.floor(x / 60_000), x))
  }
  return { perMinute, sliding }
}

/**
 * Agents that go idle and come back: after a minute unused they leave the sync. The first pause ends
 * while the instances still hold the reserves they no longer report; the second after the minute
 * rolled over, when each is cold again and admits at most its own share before its next report.
 */
const RETURNING: SimOptions[] = RANDOM.slice(0, 6).map((o) => ({
  ...o,
  seed: o.seed + 1000,
  minutes: 5,
  load: Math.max(o.load, 0.05),
  pauses: [
    [62_000, 130_000],
    [140_000, 250_000],
  ],
}))

t.test('together the instances admit at most the budget per sliding minute, plus one per instance', async (t) => {
  for (const o of [...RANDOM, ...RETURNING]) {
    const { admitted, start, mostCounted } = simulate(o)
    const bound = o.rpm + o.instances
    for (const [agent, times] of admitted) {
      const { perMinute, sliding } = windows(times, start, o.minutes)
      t.ok(
        Math.max(...perMinute) <= bound && sliding <= bound,
        `${describe(o)}, agent ${agent}: ${perMinute.join(' / ')} a minute, at most ${sliding.toFixed(1)} in a sliding minute`,
      )
    }
    t.ok(mostCounted <= bound, `${describe(o)}: Redis never counted more than ${bound} (at most ${mostCounted})`)
  }
})

t.test('one busy instance among idle ones gets nearly the whole budget', async (t) => {
  const CASES: readonly SimOptions[] = [
    { seed: 5, instances: 3, agents: ['a'], rpm: 100, minutes: 3, intervalMs: 25, latencyMs: 5, load: 0.3, busy: [0] },
    { seed: 6, instances: 3, agents: ['a'], rpm: 1000, minutes: 3, intervalMs: 25, latencyMs: 5, load: 1, busy: [2] },
    { seed: 7, instances: 2, agents: ['a'], rpm: 60, minutes: 3, intervalMs: 250, latencyMs: 40, load: 0.3, busy: [1] },
  ]
  for (const o of CASES) {
    const { admitted, start } = simulate(o)
    const { perMinute } = windows(admitted.get('a') ?? [], start, o.minutes)
    t.ok(
      perMinute.every((n) => n >= 0.9 * o.rpm && n <= o.rpm),
      `${describe(o)}: ${perMinute.join(' / ')} a minute`,
    )
  }
})

t.test('an agent nobody uses leaves the sync of every instance within two minutes', async (t) => {
  // Sandboxes, a key each, used once: each was synced about once a second per instance for ever.
  const agents = Array.from({ length: 20 }, (_, i) => `sandbox-${i}`)
  const o: SimOptions = {
    seed: 11,
    instances: 3,
    agents,
    rpm: 60,
    minutes: 4,
    intervalMs: 25,
    latencyMs: 5,
    load: 0.002,
  }
  const { lastRequestMs, lastReportMs, start } = simulate({ ...o, pauses: [[30_000, 4 * 60_000]] })
  t.ok(lastRequestMs < start + 30_000, 'requests only in the first 30 s')
  // In use until 30 s; reported for a minute more; the reserves still held go back when that minute ends.
  t.ok(
    lastReportMs <= start + 2 * 60_000 + o.intervalMs + o.latencyMs,
    `the last report ${((lastReportMs - start) / 1000).toFixed(1)} s into the simulation, none after 2 min`,
  )
})

const RPM100: AgentLimits = { requestsPerMinute: 100, concurrentConnections: null, bytesPerDay: null }
const T0 = Date.UTC(2026, 10, 25, 10, 0, 30)

t.test('a stopping instance gives every token it holds back, and asks for none', async (t) => {
  const l = createLimiter({ now: () => T0 })
  l.shared.setShared(true)
  l.admitRequest('a', RPM100)
  const [first] = l.shared.drain()
  l.shared.settle([
    {
      agentId: 'a',
      minute: first?.minute ?? 0,
      requests: 100,
      previousRequests: 0,
      granted: 0,
      day: first?.day ?? 0,
      bytes: 0,
    },
  ])
  const [last] = l.shared.drain(T0, { final: true })
  t.match(last, { returned: 99, want: 0 }, 'the 99 held beyond the one used')
  t.match(l.admitRequest('a', RPM100), { verdict: 'deny', detail: 'requests_per_minute' }, 'nothing is held any more')
})

t.test(
  'while the backend is unreachable only local limits apply; what they admitted is reported afterwards',
  async (t) => {
    const l = createLimiter({ now: () => T0 })
    const rpm2: AgentLimits = { ...RPM100, requestsPerMinute: 2 }
    l.shared.setShared(false)
    t.same([l.admitRequest('a', rpm2), l.admitRequest('a', rpm2)], [{ ok: true }, { ok: true }])
    t.match(l.admitRequest('a', rpm2), { verdict: 'deny' }, 'the local bucket alone')
    l.shared.setShared(true)
    const [report] = l.shared.drain()
    t.ok(
      (report?.requests ?? 0) >= 2,
      `the two admitted during the outage are in the first report (${report?.requests})`,
    )
  },
)

t.test('what was in flight when a sync failed is not reported again', async (t) => {
  const l = createLimiter({ now: () => T0 })
  l.shared.setShared(true)
  l.admitRequest('a', RPM100)
  t.match(l.shared.drain(), [{ agentId: 'a', requests: 100 }], 'the one used and the 99 left of its own share')
  l.shared.abandon()
  t.match(
    l.shared.drain(T0 + 2000),
    [{ agentId: 'a', requests: 0 }],
    'whether Redis applied it is unknown: it is not resent',
  )
})
