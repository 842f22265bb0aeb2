import t from 'tap'
import { createLimiter, FORGET_IDLE_MS, type Admission, type Limiter } from '../../../src/limits/limiter.js'
import type { UsageTotals } from '../../../src/limits/shared-usage.js'
import { secondsToUtcMidnight, utcDay } from '../../../src/limits/windows.js'
import type { AgentLimits, DenyDecision } from '../../../src/policy/types.js'

// 2026-11-25T10:00:30Z: mid-minute, mid-day (UTC).
const T0 = Date.UTC(2026, 10, 25, 10, 0, 30)
const MIDNIGHT = Date.UTC(2026, 10, 26)
const MINUTE = Math.floor(T0 / 60_000)

function limits(l: Partial<AgentLimits>): AgentLimits {
  return { requestsPerMinute: null, concurrentConnections: null, bytesPerDay: null, ...l }
}
const rateLimited = (detail: string, retryAfterS: number): DenyDecision => ({
  verdict: 'deny',
  reason: 'denied_rate_limited',
  ruleId: null,
  detail,
  retryAfterS,
})

type Step =
  | { readonly admit: number; readonly at?: number; readonly limits: AgentLimits; readonly agent?: string }
  | { readonly bytes: number; readonly at?: number; readonly agent?: string }

interface Case {
  readonly name: string
  readonly steps: readonly Step[]
  /** How many admits of the last admit step succeeded, and what the last answer was. */
  readonly granted: number
  readonly last: Admission
}

const CASES: readonly Case[] = [
  {
    name: 'null limits are unlimited',
    steps: [{ admit: 5000, limits: limits({}) }],
    granted: 5000,
    last: { ok: true },
  },
  {
    name: 'a burst of rpm is admitted, then requests_per_minute',
    steps: [{ admit: 61, limits: limits({ requestsPerMinute: 60 }) }],
    granted: 60,
    last: rateLimited('requests_per_minute', 1),
  },
  {
    name: 'the bucket refills over time',
    steps: [
      { admit: 60, limits: limits({ requestsPerMinute: 60 }) },
      { admit: 11, at: T0 + 10_000, limits: limits({ requestsPerMinute: 60 }) },
    ],
    granted: 10,
    last: rateLimited('requests_per_minute', 1),
  },
  {
    name: 'agents have separate budgets',
    steps: [
      { admit: 2, limits: limits({ requestsPerMinute: 2 }) },
      { admit: 2, agent: 'b', limits: limits({ requestsPerMinute: 2 }) },
    ],
    granted: 2,
    last: { ok: true },
  },
  {
    name: 'a reload raising rpm keeps what was used',
    steps: [
      { admit: 60, limits: limits({ requestsPerMinute: 60 }) },
      { admit: 600, limits: limits({ requestsPerMinute: 600 }) },
    ],
    granted: 540,
    last: rateLimited('requests_per_minute', 1),
  },
  {
    name: 'a reload lowering rpm keeps what was used',
    steps: [
      { admit: 100, limits: limits({ requestsPerMinute: 600 }) },
      { admit: 1, limits: limits({ requestsPerMinute: 60 }) },
    ],
    granted: 0,
    last: rateLimited('requests_per_minute', 1),
  },
  {
    name: 'rpm null then set starts a full bucket',
    steps: [
      { admit: 100, limits: limits({}) },
      { admit: 3, limits: limits({ requestsPerMinute: 2 }) },
    ],
    granted: 2,
    last: rateLimited('requests_per_minute', 30),
  },
  {
    name: 'bytes under budget are admitted',
    steps: [{ bytes: 999 }, { admit: 1, limits: limits({ bytesPerDay: 1000 }) }],
    granted: 1,
    last: { ok: true },
  },
  {
    name: 'bytes at budget deny until UTC midnight',
    steps: [{ bytes: 600 }, { bytes: 400 }, { admit: 1, limits: limits({ bytesPerDay: 1000 }) }],
    granted: 0,
    last: rateLimited('bytes_per_day', (MIDNIGHT - T0) / 1000),
  },
  {
    name: 'bytes are counted per agent',
    steps: [
      { bytes: 5000, agent: 'b' },
      { admit: 1, limits: limits({ bytesPerDay: 1000 }) },
    ],
    granted: 1,
    last: { ok: true },
  },
  {
    name: 'the next UTC day has a fresh byte budget',
    steps: [{ bytes: 5000 }, { admit: 1, at: MIDNIGHT, limits: limits({ bytesPerDay: 1000 }) }],
    granted: 1,
    last: { ok: true },
  },
  {
    name: 'bytes are checked before the rate, and a byte denial spends no token',
    steps: [
      { bytes: 10 },
      { admit: 3, limits: limits({ bytesPerDay: 10, requestsPerMinute: 1 }) },
      { admit: 1, limits: limits({ requestsPerMinute: 1 }) },
    ],
    granted: 1,
    last: { ok: true },
  },
  {
    name: 'zero or negative byte counts are ignored',
    steps: [{ bytes: 0 }, { bytes: -5 }, { admit: 1, limits: limits({ bytesPerDay: 1 }) }],
    granted: 1,
    last: { ok: true },
  },
]

function run(l: Limiter, steps: readonly Step[]): { granted: number; last: Admission | null } {
  let granted = 0
  let last: Admission | null = null
  for (const s of steps) {
    if ('bytes' in s) {
      l.addBytes(s.agent ?? 'ci-42', s.bytes, s.at ?? T0)
      continue
    }
    granted = 0
    for (let i = 0; i < s.admit; i++) {
      last = l.admitRequest(s.agent ?? 'ci-42', s.limits, s.at ?? T0)
      if ('ok' in last) granted++
    }
  }
  return { granted, last }
}

for (const c of CASES) {
  t.test(c.name, async (t) => {
    const r = run(createLimiter({ now: () => T0 }), c.steps)
    t.equal(r.granted, c.granted)
    t.same(r.last, c.last)
  })
}

t.test('utcDay and secondsToUtcMidnight', async (t) => {
  t.equal(utcDay(T0), 20261125)
  t.equal(utcDay(MIDNIGHT - 1), 20261125)
  t.equal(utcDay(MIDNIGHT), 20261126)
  // The remembered day answers only within its own span, whichever way time moves.
  t.equal(utcDay(MIDNIGHT - 1), 20261125)
  t.equal(utcDay(MIDNIGHT + 86_400_000 - 1), 20261126)
  t.equal(utcDay(MIDNIGHT + 86_400_000), 20261127)
  t.equal(utcDay(Date.UTC(1999, 11, 31, 23, 59, 59, 999)), 19991231)
  t.equal(utcDay(0), 19700101)
  t.equal(utcDay(-1), 19691231)
  t.equal(secondsToUtcMidnight(MIDNIGHT - 1), 1)
  t.equal(secondsToUtcMidnight(MIDNIGHT), 86_400)
})

t.test('the default clock is used when no now is passed', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 1 })
  t.same(l.admitRequest('a', lim), { ok: true })
  t.match(l.admitRequest('a', lim), { verdict: 'deny', detail: 'requests_per_minute' })
  now += 60_000
  t.same(l.admitRequest('a', lim), { ok: true })
})

t.test('concurrent connections: at the limit deny; release frees one slot, once', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ concurrentConnections: 2 })
  const a = l.acquireConnection('ci-42', lim)
  const b = l.acquireConnection('ci-42', lim)
  t.type(a, 'function')
  t.type(b, 'function')
  t.same(l.acquireConnection('ci-42', lim), rateLimited('concurrent_connections', 1))
  t.type(l.acquireConnection('other', lim), 'function', 'another agent has its own slots')
  if (typeof a !== 'function') throw new Error('expected a release')
  a()
  a()
  t.type(l.acquireConnection('ci-42', lim), 'function', 'one slot freed')
  t.match(
    l.acquireConnection('ci-42', lim),
    { verdict: 'deny', detail: 'concurrent_connections' },
    'a second release freed nothing',
  )
  t.type(l.acquireConnection('ci-42', limits({})), 'function', 'null is unlimited')
  t.match(l.stats(), {
    agents: 2,
    connections: 4,
    shared: false,
    denied: { concurrent_connections: 2, requests_per_minute: 0, bytes_per_day: 0 },
  })
})

// --- the shared-usage hooks used by redis-sync ------------------------------------------------------------

const DAY = 20261125
/** The backend's answer: totals for the drained minute, and a grant. */
const totals = (
  requests: number,
  granted: number,
  o: Partial<{ minute: number; previous: number; bytes: number; agent: string }> = {},
): UsageTotals => ({
  agentId: o.agent ?? 'ci-42',
  minute: o.minute ?? MINUTE,
  requests,
  previousRequests: o.previous ?? 0,
  granted,
  day: DAY,
  bytes: o.bytes ?? 0,
})
/** One request, then the first report of the minute and the backend's answer to it. */
function firstReport(l: Limiter, lim: AgentLimits, answer: UsageTotals): void {
  l.admitRequest('ci-42', lim)
  l.shared.drain()
  l.shared.settle([answer])
}
const admitN = (l: Limiter, n: number, lim: AgentLimits, agent = 'ci-42'): number => {
  let ok = 0
  for (let i = 0; i < n; i++) if ('ok' in l.admitRequest(agent, lim)) ok++
  return ok
}

t.test(
  'shared: before its first report an instance admits its share on its own; the report turns the rest into held tokens',
  async (t) => {
    const l = createLimiter({ now: () => T0 })
    const lim = limits({ requestsPerMinute: 100 })
    l.shared.setShared(true)
    l.shared.setInstances(4)
    t.equal(admitN(l, 10, lim), 10)
    l.addBytes('ci-42', 100)
    t.match(
      l.shared.drain(),
      [{ agentId: 'ci-42', minute: MINUTE, requests: 25, returned: 0, want: 8, rpm: 100, day: DAY, bytes: 100 }],
      'the whole share of ceil(100 / 4) counted (10 used, 15 held), topped up to a fair ceil((15 + 75) / 4) = 23',
    )
    t.equal(admitN(l, 100, lim), 15, 'the held rest, no gap while the answer is on its way')
    t.same(
      l.admitRequest('ci-42', lim),
      rateLimited('requests_per_minute', 1),
      'budget left elsewhere: retry in a second',
    )
  },
)

t.test('shared: after a report, requests are admitted only from held tokens', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  l.shared.setInstances(2)
  admitN(l, 1, lim)
  t.match(l.shared.drain(), [{ requests: 50, want: 1 }], '1 used and 49 held of ceil(100 / 2)')
  l.shared.settle([totals(95, 1)])
  t.equal(admitN(l, 100, lim), 50, 'the 49 held and the 1 granted, no more')
  t.same(l.admitRequest('ci-42', lim), rateLimited('requests_per_minute', 1), 'five left somewhere: retry in a second')
  l.shared.drain()
  l.shared.settle([totals(100, 0)])
  t.same(
    l.admitRequest('ci-42', lim),
    rateLimited('requests_per_minute', 31),
    'all used: retry once the window has room, 0.6 s into the next minute (the 100 weigh 99.4 then)',
  )
})

t.test('shared: tokens are topped up to a fair share of what is unclaimed; the excess goes back', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  l.shared.setInstances(4)
  firstReport(l, lim, totals(26, 1))
  t.equal(admitN(l, 3, lim), 3)
  t.match(l.shared.drain(), [{ requests: 0, returned: 0, want: 2 }], 'held 22 of a fair ceil((22 + 74) / 4) = 24')
  l.shared.settle([totals(90, 2)])
  t.match(l.shared.drain(), [{ returned: 15, want: 0 }], 'held 24 of a fair ceil((24 + 10) / 4) = 9: fifteen go back')
  t.equal(admitN(l, 20, lim), 9, 'what went back is no longer usable here')
})

t.test('shared: without requests for a second, held tokens go back down to a reserve', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(100, 0))
  now = T0 + 1500
  t.match(l.shared.drain(), [{ returned: 89, want: 0 }], 'keeps ceil(100 / 10) of its 99')
  t.equal(admitN(l, 20, lim), 10, 'the reserve admits the next requests at once')
})

t.test('shared: a failed sync keeps what is held and forgets what was in flight', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(100, 0))
  l.shared.drain()
  l.shared.abandon()
  t.equal(admitN(l, 20, lim), 20, 'the held tokens stay usable')
})

t.test(
  'shared: a share is asked for only with requests here in the last second; learned agents are reported too',
  async (t) => {
    let now = T0
    const l = createLimiter({ now: () => now })
    l.shared.setShared(true)
    admitN(l, 1, limits({ requestsPerMinute: 10 }))
    now = T0 + 2000
    l.shared.learn([
      { agentId: 'elsewhere', rpm: null, usedMs: now },
      { agentId: 'busy', rpm: 600, usedMs: now },
    ])
    const d = l.shared.drain()
    t.match(
      d,
      [
        { agentId: 'ci-42', requests: 10, returned: 8, want: 0 },
        { agentId: 'elsewhere', requests: 0, returned: 0, want: 0, rpm: 0 },
        { agentId: 'busy', requests: 0, returned: 0, want: 60, rpm: 600 },
      ],
      'agents quiet here keep a reserve, a tenth of a share (at least one); a learned agent asks Redis for one',
    )
    t.same(
      l.admitRequest('busy', limits({ requestsPerMinute: 600 })),
      rateLimited('requests_per_minute', 1),
      'a learned agent is never admitted on an own share: what is left of it is unknown here',
    )
    l.shared.settle([totals(599, 60, { agent: 'busy' })])
    t.equal(admitN(l, 100, limits({ requestsPerMinute: 600 }), 'busy'), 60, 'the granted reserve is')
    now = T0 + 63_000
    t.same(
      l.shared.drain().map((r) => r.agentId),
      [],
      'idle for a minute: not reported',
    )
  },
)

t.test(
  'shared: an agent used nowhere for a minute leaves the sync; what it holds waits for it until the minute ends',
  async (t) => {
    const lim = limits({ requestsPerMinute: 100 })
    /** Used once at 10:00:30, then only read back from the active sets (its own announcement); at 10:01:31. */
    function quietForAMinute(): { l: Limiter; at: (ms: number) => number } {
      let now = T0
      const l = createLimiter({ now: () => now })
      l.shared.setShared(true)
      firstReport(l, lim, totals(100, 0))
      now = T0 + 1500
      t.match(l.shared.drain(), [{ returned: 89, usedMs: T0 }], 'a reserve is kept, announced as used when it was')
      now = T0 + 31_000 // 10:01:01
      l.shared.learn([{ agentId: 'ci-42', rpm: 100, usedMs: T0 }])
      t.match(
        l.shared.drain(),
        [
          { minute: MINUTE, returned: 10 },
          { minute: MINUTE + 1, requests: 11, returned: 1, usedMs: T0 },
        ],
        'a new minute: the old reserve goes back, a new one is taken',
      )
      l.shared.settle([totals(10, 0, { minute: MINUTE + 1, previous: 90 })])
      now = T0 + 61_000 // 10:01:31
      l.shared.learn([{ agentId: 'ci-42', rpm: 100, usedMs: T0 }])
      t.same(l.shared.drain(), [], 'used a minute ago: no longer reported, read back or not')
      return { l, at: (ms) => (now = ms) }
    }

    const comesBack = quietForAMinute()
    t.equal(admitN(comesBack.l, 1, lim), 1, 'a request that comes back is admitted at once, from the reserve held')
    t.match(comesBack.l.shared.drain(), [{ usedMs: T0 + 61_000, want: 47 }], 'and the agent is in the sync again')

    const stays = quietForAMinute()
    stays.at(T0 + 91_000) // 10:02:01
    t.same(stays.l.shared.drain(), [], 'still unused')
    t.match(
      stays.l.shared.drain(),
      [{ minute: MINUTE + 1, requests: 0, returned: 10, want: 0 }],
      'once, the reserve of the minute that ended goes back',
    )
    t.same(stays.l.shared.drain(), [], 'then nothing')
    t.equal(
      admitN(stays.l, 200, lim),
      100,
      'cold again, it admits its own share before its next report: all of it, nothing was used since 10:00:30',
    )
    t.match(stays.l.shared.drain(), [{ minute: MINUTE + 2, usedMs: T0 + 91_000 }], 'reported as used')
  },
)

t.test(
  'shared: an instance live since before the minute admits a learned agent on the placeholder Redis held for it',
  async (t) => {
    let now = T0 - 40_000 // 09:59:50: sharing since the previous minute
    const l = createLimiter({ now: () => now })
    l.shared.setShared(true)
    l.shared.setInstances(2)
    now = T0
    l.shared.setInstances(3) // a third instance was live for a while this minute: placeholders were rpm / 3
    l.shared.setInstances(2)
    l.shared.learn([{ agentId: 'busy', rpm: 60, usedMs: now }])
    t.equal(
      admitN(l, 40, limits({ requestsPerMinute: 60 }), 'busy'),
      20,
      'no more than the smallest placeholder of the minute (60 / 3), at once, without waiting for a sync',
    )
    t.match(l.shared.drain(), [{ agentId: 'busy', requests: 20 }], 'reported as used at the first report')
    const fresh = createLimiter({ now: () => now })
    fresh.shared.setShared(true) // sharing only since 10:00:30
    fresh.shared.setInstances(2)
    fresh.shared.learn([{ agentId: 'busy', rpm: 60, usedMs: now }])
    t.same(
      fresh.admitRequest('busy', limits({ requestsPerMinute: 60 })),
      rateLimited('requests_per_minute', 1),
      'an instance that joined mid-minute held no placeholder when the others took tokens: Redis grants only',
    )
  },
)

t.test('shared: a budget used up everywhere is refused until the window has room (sliding window)', async (t) => {
  let now = T0 // 10:00:30
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 10 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(10, 0))
  t.equal(admitN(l, 20, lim), 9, 'the nine held')
  t.same(
    l.admitRequest('ci-42', lim),
    rateLimited('requests_per_minute', 36),
    'then retry at 10:01:06, when the ten weigh 9 in the sliding minute (not at 10:01:00, when they weigh 10)',
  )
  now = (MINUTE + 1) * 60_000 + 1000 // 10:01:01: the previous minute still weighs 59/60
  t.equal(admitN(l, 10, lim), 0, 'before the first report of the minute: its share of 10 - 9.83, rounded down, is none')
  t.same(
    l.admitRequest('ci-42', lim),
    rateLimited('requests_per_minute', 5),
    'the same moment, asked again at 10:01:01: five seconds on',
  )
})

t.test('shared: a new minute drops held tokens and hands over what the old one left unsynced', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(100, 0))
  admitN(l, 4, lim)
  l.addBytes('ci-42', 7)
  now = MIDNIGHT + 1000 // next minute and next day
  admitN(l, 1, lim)
  const d = l.shared.drain()
  t.match(
    d,
    [
      { agentId: 'ci-42', minute: MINUTE, requests: 0, day: DAY, bytes: 7, returned: 0 },
      { agentId: 'ci-42', minute: Math.floor(now / 60_000), returned: 0, day: 20261126, bytes: 0 },
    ],
    "the old day's bytes are handed over; the 95 tokens held for the old minute are not returned into the new one",
  )
  l.shared.settle([totals(100, 50, { bytes: 1e9 }), { ...totals(0, 0, { agent: 'gone' }), minute: 0, day: 0 }])
  t.same(
    l.admitRequest('ci-42', limits({ requestsPerMinute: 100, bytesPerDay: 10 })),
    { ok: true },
    'totals of old windows do not apply',
  )
})

t.test(
  'shared: tokens held unused when the minute ends are given back to it, and do not refuse the next',
  async (t) => {
    let now = T0 // 10:00:30
    const l = createLimiter({ now: () => now })
    const lim = limits({ requestsPerMinute: 6 })
    l.shared.setShared(true)
    l.shared.setInstances(2)
    // One request, then the report: Redis counts 1 used and 2 held here, and 3 held by the other instance.
    firstReport(l, lim, totals(6, 0))
    now = (MINUTE + 1) * 60_000 + 5000 // 10:01:05, the old minute still weighs 55/60
    t.same(l.admitRequest('ci-42', lim), { ok: true }, 'the estimate of the old minute leaves out what is given back')
    t.match(
      l.shared.drain(now),
      [
        { agentId: 'ci-42', minute: MINUTE, requests: 0, returned: 2, want: 0 },
        { agentId: 'ci-42', minute: MINUTE + 1, returned: 0 },
      ],
      'the two tokens held unused are returned to the old minute',
    )
    l.shared.settle([totals(4, 1, { minute: MINUTE + 1, previous: 1 })])
    now = MIDNIGHT + 1000 // hours later: the old minute weighs on nothing, and nothing is returned to it
    const late = l.shared.drain(now)
    t.same(
      late.filter((r) => r.minute === MINUTE + 1).map((r) => r.returned),
      [],
      `the tokens held for a minute long past stay there (${JSON.stringify(late)})`,
    )
  },
)

t.test('shared: unsynced counts of a minute that rolled over are still handed over', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  admitN(l, 4, lim)
  l.addBytes('ci-42', 7)
  now = MIDNIGHT + 1000
  admitN(l, 1, lim)
  t.match(l.shared.drain(), [
    { agentId: 'ci-42', minute: MINUTE, requests: 4, day: DAY, bytes: 7, want: 0 },
    { agentId: 'ci-42', minute: Math.floor(now / 60_000), day: 20261126, bytes: 0 },
  ])
})

t.test('shared: bytes known globally deny, and local mode ignores them', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ bytesPerDay: 1000 })
  l.shared.setShared(true)
  l.admitRequest('ci-42', lim)
  l.shared.drain()
  l.shared.settle([totals(0, 0, { bytes: 1000 })])
  t.match(l.admitRequest('ci-42', lim), { detail: 'bytes_per_day' })
  l.shared.setShared(false)
  t.same(l.admitRequest('ci-42', lim), { ok: true }, "fallback: only this instance's bytes count")
  t.equal(l.shared.isShared(), false)
})

t.test('shared: the local bucket still applies', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 10 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(10, 50))
  t.equal(admitN(l, 100, lim), 9, 'tokens to spare, but one instance never bursts past rpm')
})

t.test('shared: a refund gives a held token back', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 2 })
  l.shared.setShared(true)
  firstReport(l, lim, totals(2, 0))
  t.equal(admitN(l, 1, lim), 1, 'the one held')
  l.refundRequest('ci-42')
  t.equal(admitN(l, 2, lim), 1, 'the refunded token, once')
})

t.test(
  'refundRequest gives back one admitted request (a CONNECT whose inner requests are counted instead)',
  async (t) => {
    const l = createLimiter({ now: () => T0 })
    const lim = limits({ requestsPerMinute: 2 })
    t.same(l.admitRequest('ci-42', lim), { ok: true })
    t.same(l.admitRequest('ci-42', lim), { ok: true })
    t.match(l.admitRequest('ci-42', lim), { verdict: 'deny' })
    l.refundRequest('ci-42')
    t.same(l.admitRequest('ci-42', lim), { ok: true }, 'the refunded request is available again')
    l.refundRequest('nobody')
    t.pass('refunding an unknown agent is a no-op')
  },
)

t.test('idle agents are forgotten after a day, unless they hold a connection or owe a report', async (t) => {
  let now = Date.UTC(2026, 0, 1, 12)
  const limiter = createLimiter({ now: () => now })
  const limits: AgentLimits = { requestsPerMinute: 5, concurrentConnections: 1, bytesPerDay: null }
  const admitted = (key: string): boolean => 'ok' in limiter.admitRequest(key, limits)
  for (const sandbox of ['ci+s1', 'ci+s2', 'ci+s3']) t.ok(admitted(sandbox))
  const held = limiter.acquireConnection('ci+s3', limits)
  t.equal(typeof held, 'function')
  t.equal(limiter.stats().agents, 3)
  now += FORGET_IDLE_MS + 11 * 60_000
  t.ok(admitted('ci+s4'), 'the request that triggers the prune is admitted')
  // s1 and s2 are gone from the ledger; s3 is gone from the ledger too, but its open slot is kept.
  t.equal(limiter.stats().agents, 1)
  t.equal(limiter.stats().connections, 1)
  t.equal(typeof limiter.acquireConnection('ci+s3', limits), 'object', 'the open slot still counts')
  ;(held as () => void)()
  // A forgotten agent comes back with a full bucket.
  for (let i = 0; i < 5; i++) t.ok(admitted('ci+s1'))
  t.match(limiter.admitRequest('ci+s1', limits), { reason: 'denied_rate_limited' })
})

t.test('shared: a reload that lowers the budget leaves no instance more than its share of the new one', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const before = limits({ requestsPerMinute: 100 })
  const after = limits({ requestsPerMinute: 20 })
  l.shared.setShared(true)
  l.shared.setInstances(2)
  admitN(l, 1, before)
  t.match(l.shared.drain(), [{ requests: 50 }], '1 used and 49 held of ceil(100 / 2)')
  l.shared.settle([totals(50, 0)])
  t.equal(admitN(l, 40, after), 10, 'ceil(20 / 2) of the 49 held, not the local bucket of 20')
  t.match(l.shared.drain(), [{ returned: 39 }], 'the rest goes back at the next report')
})
