import t from 'tap'
import { createLimiter, secondsToUtcMidnight, utcDay, type Admission, type Limiter } from '../../../src/limits/limiter.js'
import type { AgentLimits, DenyDecision } from '../../../src/policy/types.js'

// 2026-11-25T10:00:30Z: mid-minute, mid-day (UTC).
const T0 = Date.UTC(2026, 10, 25, 10, 0, 30)
const MIDNIGHT = Date.UTC(2026, 10, 26)
const MINUTE = Math.floor(T0 / 60_000)

function limits(l: Partial<AgentLimits>): AgentLimits {
  return { requestsPerMinute: null, concurrentConnections: null, bytesPerDay: null, ...l }
}
const rateLimited = (detail: string, retryAfterS: number): DenyDecision => ({ verdict: 'deny', reason: 'denied_rate_limited', ruleId: null, detail, retryAfterS })

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
  { name: 'null limits are unlimited', steps: [{ admit: 5000, limits: limits({}) }], granted: 5000, last: { ok: true } },
  { name: 'a burst of rpm is admitted, then requests_per_minute', steps: [{ admit: 61, limits: limits({ requestsPerMinute: 60 }) }], granted: 60, last: rateLimited('requests_per_minute', 1) },
  { name: 'the bucket refills over time', steps: [{ admit: 60, limits: limits({ requestsPerMinute: 60 }) }, { admit: 11, at: T0 + 10_000, limits: limits({ requestsPerMinute: 60 }) }], granted: 10, last: rateLimited('requests_per_minute', 1) },
  { name: 'agents have separate budgets', steps: [{ admit: 2, limits: limits({ requestsPerMinute: 2 }) }, { admit: 2, agent: 'b', limits: limits({ requestsPerMinute: 2 }) }], granted: 2, last: { ok: true } },
  { name: 'a reload raising rpm keeps what was used', steps: [{ admit: 60, limits: limits({ requestsPerMinute: 60 }) }, { admit: 600, limits: limits({ requestsPerMinute: 600 }) }], granted: 540, last: rateLimited('requests_per_minute', 1) },
  { name: 'a reload lowering rpm keeps what was used', steps: [{ admit: 100, limits: limits({ requestsPerMinute: 600 }) }, { admit: 1, limits: limits({ requestsPerMinute: 60 }) }], granted: 0, last: rateLimited('requests_per_minute', 1) },
  { name: 'rpm null then set starts a full bucket', steps: [{ admit: 100, limits: limits({}) }, { admit: 3, limits: limits({ requestsPerMinute: 2 }) }], granted: 2, last: rateLimited('requests_per_minute', 30) },
  { name: 'bytes under budget are admitted', steps: [{ bytes: 999 }, { admit: 1, limits: limits({ bytesPerDay: 1000 }) }], granted: 1, last: { ok: true } },
  { name: 'bytes at budget deny until UTC midnight', steps: [{ bytes: 600 }, { bytes: 400 }, { admit: 1, limits: limits({ bytesPerDay: 1000 }) }], granted: 0, last: rateLimited('bytes_per_day', (MIDNIGHT - T0) / 1000) },
  { name: 'bytes are counted per agent', steps: [{ bytes: 5000, agent: 'b' }, { admit: 1, limits: limits({ bytesPerDay: 1000 }) }], granted: 1, last: { ok: true } },
  { name: 'the next UTC day has a fresh byte budget', steps: [{ bytes: 5000 }, { admit: 1, at: MIDNIGHT, limits: limits({ bytesPerDay: 1000 }) }], granted: 1, last: { ok: true } },
  { name: 'bytes are checked before the rate, and a byte denial spends no token', steps: [{ bytes: 10 }, { admit: 3, limits: limits({ bytesPerDay: 10, requestsPerMinute: 1 }) }, { admit: 1, limits: limits({ requestsPerMinute: 1 }) }], granted: 1, last: { ok: true } },
  { name: 'zero or negative byte counts are ignored', steps: [{ bytes: 0 }, { bytes: -5 }, { admit: 1, limits: limits({ bytesPerDay: 1 }) }], granted: 1, last: { ok: true } },
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
  t.match(l.acquireConnection('ci-42', lim), { verdict: 'deny', detail: 'concurrent_connections' }, 'a second release freed nothing')
  t.type(l.acquireConnection('ci-42', limits({})), 'function', 'null is unlimited')
  t.match(l.stats(), { agents: 2, connections: 4, shared: false, denied: { concurrent_connections: 2, requests_per_minute: 0, bytes_per_day: 0 } })
})

// --- the shared-usage hooks used by redis-sync ------------------------------------------------------------

t.test('shared: drain hands over unsynced counts; in-flight counts still count until settled', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 10 })
  l.shared.setShared(true)
  for (let i = 0; i < 3; i++) l.admitRequest('ci-42', lim)
  l.addBytes('ci-42', 100)
  t.same(l.shared.drain(), [{ agentId: 'ci-42', minute: MINUTE, requests: 3, day: 20261125, bytes: 100 }])
  // another instance admitted 6 meanwhile: global = 3 (ours) + 6
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 9, day: 20261125, bytes: 100 }])
  t.same(l.admitRequest('ci-42', lim), { ok: true }, '9 + 0 < 10')
  t.same(l.admitRequest('ci-42', lim), rateLimited('requests_per_minute', 30), 'the shared window is full: retry at its end')
  t.equal(l.stats().denied.requests_per_minute, 1)
})

t.test('shared: the admit check is the min of the local bucket and the shared window', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 10 })
  l.shared.setShared(true)
  let granted = 0
  for (let i = 0; i < 20; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 10, 'with no remote usage the local bucket still applies')
  const d = l.shared.drain()
  t.equal(d[0]?.requests, 10)
  t.match(l.admitRequest('ci-42', lim), { detail: 'requests_per_minute' }, 'in-flight counts are counted')
  l.shared.abandon()
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 0, day: 20261125, bytes: 0 }])
  t.match(l.admitRequest('ci-42', lim), { detail: 'requests_per_minute' }, 'the empty local bucket still denies')
})

t.test('shared: bytes known globally deny, and local mode ignores them', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ bytesPerDay: 1000 })
  l.shared.setShared(true)
  l.admitRequest('ci-42', lim)
  l.shared.drain()
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 0, day: 20261125, bytes: 1000 }])
  t.match(l.admitRequest('ci-42', lim), { detail: 'bytes_per_day' })
  l.shared.setShared(false)
  t.same(l.admitRequest('ci-42', lim), { ok: true }, 'fallback: only this instance\'s bytes count')
  t.equal(l.shared.isShared(), false)
})

t.test('shared: counts of a window that rolled before syncing are still handed over; late totals are ignored', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  for (let i = 0; i < 4; i++) l.admitRequest('ci-42', lim)
  l.addBytes('ci-42', 7)
  now = MIDNIGHT + 1000 // next minute and next day
  l.admitRequest('ci-42', lim)
  const d = l.shared.drain()
  t.same(d, [
    { agentId: 'ci-42', minute: MINUTE, requests: 4, day: 20261125, bytes: 7 },
    { agentId: 'ci-42', minute: Math.floor(now / 60_000), requests: 1, day: 20261126, bytes: 0 },
  ])
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 100, day: 20261125, bytes: 1e9 }, { agentId: 'gone', minute: 0, requests: 0, day: 0, bytes: 0 }])
  t.same(l.admitRequest('ci-42', limits({ requestsPerMinute: 100, bytesPerDay: 10 })), { ok: true }, 'totals of the old windows do not apply')
})

t.test('shared: drain skips agents idle for over a minute, refreshes recently active ones', async (t) => {
  let now = T0
  const l = createLimiter({ now: () => now })
  l.shared.setShared(true)
  l.admitRequest('ci-42', limits({ requestsPerMinute: 10 }))
  t.equal(l.shared.drain().length, 1)
  t.same(l.shared.drain(), [{ agentId: 'ci-42', minute: MINUTE, requests: 0, day: 20261125, bytes: 0 }], 'active this minute: refreshed')
  now = T0 + 61_000
  t.same(l.shared.drain(), [], 'idle')
})

t.test('shared: each of N live instances may use 1/N of what was left at the last sync', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 100 })
  l.shared.setShared(true)
  l.shared.setInstances(4)
  let granted = 0
  for (let i = 0; i < 100; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 25, 'before the first sync: budget / instances')
  t.same(l.admitRequest('ci-42', lim), rateLimited('requests_per_minute', 1), 'only this interval\'s share is used: retry in a second')
  l.shared.drain()
  // Globally 25 (ours) + 35 elsewhere; two instances alive now: 40 left, 20 each.
  l.shared.setInstances(2)
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 60, day: 20261125, bytes: 0 }])
  granted = 0
  for (let i = 0; i < 100; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 20, 'then its share of what is left')
  l.shared.drain()
  l.shared.setInstances(1)
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 99, day: 20261125, bytes: 0 }])
  t.same(l.admitRequest('ci-42', lim), { ok: true }, 'alone again: the last one')
  t.same(l.admitRequest('ci-42', lim), rateLimited('requests_per_minute', 30), 'the budget is used: retry when the window ends')
})

t.test('shared: a new minute is no fresh budget on top of one just spent (sliding window)', async (t) => {
  let now = T0 // 10:00:30
  const l = createLimiter({ now: () => now })
  const lim = limits({ requestsPerMinute: 10 })
  l.shared.setShared(true)
  let granted = 0
  for (let i = 0; i < 10; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 10)
  l.shared.drain()
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE, requests: 10, day: 20261125, bytes: 0 }])
  now = (MINUTE + 1) * 60_000 + 1000 // 10:01:01: the bucket holds ~5 tokens again, the fixed window is empty
  granted = 0
  for (let i = 0; i < 10; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 1, 'the previous minute still weighs 59/60: one request, not five')
  const d = l.admitRequest('ci-42', lim)
  t.match(d, { verdict: 'deny', detail: 'requests_per_minute' })
  t.ok('retryAfterS' in d && (d.retryAfterS ?? 0) >= 5 && (d.retryAfterS ?? 0) <= 59, `Retry-After while the previous minute fades (${'retryAfterS' in d ? d.retryAfterS : '?'} s)`)
  l.shared.drain()
  l.shared.settle([{ agentId: 'ci-42', minute: MINUTE + 1, requests: 1, day: 20261125, bytes: 0, previousRequests: 10 }])
  now = (MINUTE + 1) * 60_000 + 45_000 // 10:01:45: 10 × 0.25 + 1 used
  granted = 0
  for (let i = 0; i < 10; i++) if ('ok' in l.admitRequest('ci-42', lim)) granted++
  t.equal(granted, 7, 'room comes back as the previous minute fades')
})

t.test('refundRequest gives back one admitted request (a CONNECT whose inner requests are counted instead)', async (t) => {
  const l = createLimiter({ now: () => T0 })
  const lim = limits({ requestsPerMinute: 2 })
  t.same(l.admitRequest('ci-42', lim), { ok: true })
  t.same(l.admitRequest('ci-42', lim), { ok: true })
  t.match(l.admitRequest('ci-42', lim), { verdict: 'deny' })
  l.refundRequest('ci-42')
  t.same(l.admitRequest('ci-42', lim), { ok: true }, 'the refunded request is available again')
  l.refundRequest('nobody')
  t.pass('refunding an unknown agent is a no-op')
})
