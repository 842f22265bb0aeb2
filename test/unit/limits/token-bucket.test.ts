import t from 'tap'
import { createBucket, refill, resize, take, type TokenBucket } from '../../../src/limits/token-bucket.js'

const T0 = 1_000_000

/** Take `count` tokens at `now`; return how many were granted. */
function drain(b: TokenBucket, now: number, count: number): number {
  let ok = 0
  for (let i = 0; i < count; i++) if (take(b, now).ok) ok++
  return ok
}

interface Case {
  readonly name: string
  readonly rpm: number
  /** Steps: take n tokens at T0 + atMs. */
  readonly steps: ReadonlyArray<{ readonly atMs: number; readonly n?: number }>
  readonly last: { ok: true } | { ok: false; retryAfterS: number }
}

const CASES: readonly Case[] = [
  {
    name: 'a fresh bucket grants a whole minute of budget at once',
    rpm: 60,
    steps: [{ atMs: 0, n: 60 }],
    last: { ok: true },
  },
  {
    name: 'one more than the burst is denied for one second at 60 rpm',
    rpm: 60,
    steps: [{ atMs: 0, n: 60 }, { atMs: 0 }],
    last: { ok: false, retryAfterS: 1 },
  },
  {
    name: 'at 6 rpm an empty bucket asks for 10 s',
    rpm: 6,
    steps: [{ atMs: 0, n: 6 }, { atMs: 0 }],
    last: { ok: false, retryAfterS: 10 },
  },
  {
    name: 'at 6 rpm, 4 s after emptying, 6 s remain',
    rpm: 6,
    steps: [{ atMs: 0, n: 6 }, { atMs: 4000 }],
    last: { ok: false, retryAfterS: 6 },
  },
  {
    name: 'refill earns one token per rpm/60000 ms',
    rpm: 60,
    steps: [{ atMs: 0, n: 60 }, { atMs: 1000 }],
    last: { ok: true },
  },
  {
    name: 'a partial token is not a token',
    rpm: 60,
    steps: [{ atMs: 0, n: 60 }, { atMs: 999 }],
    last: { ok: false, retryAfterS: 1 },
  },
  { name: 'rpm 0 never grants and says a minute', rpm: 0, steps: [{ atMs: 0 }], last: { ok: false, retryAfterS: 60 } },
  {
    name: 'taking more than capacity at once is denied for a minute',
    rpm: 10,
    steps: [{ atMs: 0, n: 11 }],
    last: { ok: false, retryAfterS: 60 },
  },
  {
    name: 'a clock going backwards earns nothing',
    rpm: 60,
    steps: [{ atMs: 5000, n: 60 }, { atMs: 0 }],
    last: { ok: false, retryAfterS: 1 },
  },
]

for (const c of CASES) {
  t.test(c.name, async (t) => {
    const b = createBucket(c.rpm, T0)
    let last: unknown = null
    for (const s of c.steps) {
      const n = s.n ?? 1
      // multi-token steps are taken one at a time, like n requests
      if (n > 1 && n <= c.rpm) {
        t.equal(drain(b, T0 + s.atMs, n), n, `step at ${s.atMs} ms grants ${n}`)
        last = { ok: true }
      } else last = take(b, T0 + s.atMs, n)
    }
    t.same(last, c.last)
  })
}

t.test('the bucket never holds more than its capacity', async (t) => {
  const b = createBucket(60, T0)
  refill(b, T0 + 10 * 60_000)
  t.equal(b.tokens, 60)
  t.equal(drain(b, T0 + 10 * 60_000, 100), 60)
})

t.test('a denied take consumes nothing', async (t) => {
  const b = createBucket(60, T0)
  drain(b, T0, 60)
  take(b, T0 + 500)
  t.ok(take(b, T0 + 1000).ok, 'the token earned by 1 s is still there')
})

t.test('resize keeps usage: raising after spending the burst leaves the difference', async (t) => {
  const b = createBucket(60, T0)
  drain(b, T0, 60)
  resize(b, 600, T0)
  t.equal(b.capacity, 600)
  t.equal(drain(b, T0, 1000), 540)
})

t.test('resize keeps usage: lowering below what was used leaves nothing', async (t) => {
  const b = createBucket(600, T0)
  drain(b, T0, 100)
  resize(b, 60, T0)
  t.equal(b.tokens, 0)
  t.same(take(b, T0), { ok: false, retryAfterS: 1 })
})

t.test('resize to the same capacity changes nothing', async (t) => {
  const b = createBucket(60, T0)
  drain(b, T0, 10)
  resize(b, 60, T0)
  t.equal(b.tokens, 50)
})
