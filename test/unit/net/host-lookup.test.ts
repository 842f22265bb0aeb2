import t, { type Test } from 'tap'
import { createHostLookup, type HostLookup, type SystemLookup } from '../../../src/net/host-lookup.js'

/** A resolver that counts its queries and answers when told (`answer`/`fail`), on a clock the test moves. */
function fakeResolver(): {
  lookup: SystemLookup
  asked: string[]
  answer(addresses: string[]): void
  /** Answers the oldest query and gives back `p` (a lookup waiting on it). */
  answered<T>(p: Promise<T>, addresses: string[]): Promise<T>
  fail(code: string): void
  clock: { now: number }
  /** A cache over this resolver, on its clock. */
  cache(maxNames?: number): HostLookup
} {
  const asked: string[] = []
  const waiting: Array<{ resolve(a: string[]): void; reject(e: Error): void }> = []
  const clock = { now: 1_000 }
  const lookup: SystemLookup = (host) => {
    asked.push(host)
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }))
  }
  const answer = (addresses: string[]): void => waiting.shift()?.resolve(addresses)
  return {
    asked,
    clock,
    lookup,
    answer,
    answered: (p, addresses) => {
      answer(addresses)
      return p
    },
    fail: (code) => waiting.shift()?.reject(Object.assign(new Error(code), { code })),
    cache: (maxNames = 10) => createHostLookup({ lookup, maxNames, now: () => clock.now }),
  }
}

type FakeResolver = ReturnType<typeof fakeResolver>

/** `p` went to the resolver as its `n`-th query (nothing kept answered it), and gets the answer it gives. */
async function assertAskedAgain(t: Test, r: FakeResolver, p: Promise<readonly string[]>, n: number, why: string) {
  t.equal(r.asked.length, n, why)
  t.same(await r.answered(p, ['192.0.2.8']), ['192.0.2.8'])
}

t.test('an answer is used again until it is dns_cache_ttl_ms old, then asked again', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  t.same(await r.answered(lookup('example.test', 10_000), ['192.0.2.1']), ['192.0.2.1'])
  r.clock.now += 9_999
  t.same(await lookup('example.test', 10_000), ['192.0.2.1'], 'kept within the TTL')
  t.same(r.asked, ['example.test'], 'one query so far')
  r.clock.now += 1
  t.same(
    await r.answered(lookup('example.test', 10_000), ['192.0.2.2']),
    ['192.0.2.2'],
    'a new answer once the TTL has passed',
  )
  t.same(r.asked, ['example.test', 'example.test'])
})

t.test('the TTL is read on each use: a reload to 0 asks for every request at once', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  await r.answered(lookup('example.test', 60_000), ['192.0.2.1'])
  t.same(await r.answered(lookup('example.test', 0), ['192.0.2.3']), ['192.0.2.3'])
  t.equal(r.asked.length, 2)
})

t.test('lookups of a name already under way share its query', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  const all = Promise.all([lookup('a.test', 10_000), lookup('a.test', 10_000), lookup('a.test', 0)])
  const other = lookup('b.test', 10_000)
  t.same(r.asked, ['a.test', 'b.test'], 'one query per name')
  r.answer(['192.0.2.1'])
  r.answer(['192.0.2.9'])
  t.same(await all, [['192.0.2.1'], ['192.0.2.1'], ['192.0.2.1']])
  t.same(await other, ['192.0.2.9'])
})

t.test('a failure is shared by those waiting but never kept', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  const both = [lookup('gone.test', 10_000), lookup('gone.test', 10_000)]
  r.fail('ENOTFOUND')
  for (const p of both) await t.rejects(p, { code: 'ENOTFOUND' })
  await assertAskedAgain(t, r, lookup('gone.test', 10_000), 2, 'the next request asks again')
})

t.test('a failure drops the answer kept before it: a reload to a longer TTL cannot bring it back', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  await r.answered(lookup('moved.test', 10_000), ['192.0.2.1'])
  r.clock.now += 20_000
  const failed = lookup('moved.test', 10_000)
  r.fail('ENOTFOUND')
  await t.rejects(failed, { code: 'ENOTFOUND' })
  await assertAskedAgain(t, r, lookup('moved.test', 3_600_000), 3, 'asked again, not the old answer')
})

t.test('by default answers age on a monotonic clock, not the wall clock', async (t) => {
  const r = fakeResolver()
  const lookup = createHostLookup({ lookup: r.lookup, maxNames: 10 })
  const realNow = Date.now
  await r.answered(lookup('clock.test', 50), ['192.0.2.1'])
  // The wall clock set back an hour (NTP step, VM restore) must not keep the answer for that hour.
  Date.now = () => realNow() - 3_600_000
  t.teardown(() => void (Date.now = realNow))
  await new Promise((resolve) => setTimeout(resolve, 80))
  await assertAskedAgain(t, r, lookup('clock.test', 50), 2, 'asked again once 50 ms have passed')
})

t.test('an empty answer is not kept', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache()
  t.same(await r.answered(lookup('empty.test', 10_000), []), [])
  await assertAskedAgain(t, r, lookup('empty.test', 10_000), 2, 'an empty answer is asked again')
})

t.test('at most maxNames names are kept: the least recently used is asked again', async (t) => {
  const r = fakeResolver()
  const lookup = r.cache(2)
  for (const host of ['a.test', 'b.test', 'c.test']) {
    await r.answered(lookup(host, 10_000), ['192.0.2.1'])
  }
  // Kept answers come back at once; a query would wait for an answer nobody gives (checked before awaiting).
  const kept = [lookup('c.test', 10_000), lookup('b.test', 10_000)]
  t.same(r.asked, ['a.test', 'b.test', 'c.test'], 'b and c kept')
  await Promise.all(kept)
  await r.answered(lookup('a.test', 10_000), ['192.0.2.1'])
  t.same(r.asked, ['a.test', 'b.test', 'c.test', 'a.test'], 'a was pushed out')
})
