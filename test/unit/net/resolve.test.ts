import t from 'tap'
import { createHostLookup } from '../../../src/net/host-lookup.js'
import { parseCidr, type Cidr } from '../../../src/net/host.js'
import { resolveChecked, resolveCheckedNow, type ResolveSettings } from '../../../src/net/resolve.js'

function cidr(text: string): Cidr {
  const c = parseCidr(text)
  if (c === null) throw new Error(`bad test CIDR ${text}`)
  return c
}

// Addresses are documentation and special-purpose ranges, and nothing here is dialled: TEST-NET-1
// (192.0.2.0/24) stands for a public answer by being exempt, as allow_private would make it.
const DOC = cidr('192.0.2.0/24')

function settings(o: Partial<ResolveSettings> = {}): ResolveSettings {
  return { resolve: new Map(), allowPrivate: [DOC], dnsCacheTtlMs: 60_000, ...o }
}

/** A resolver answering `answers[host]`, counting queries. */
function resolver(answers: Record<string, string[]>): { asked: string[]; lookup: ReturnType<typeof createHostLookup> } {
  const asked: string[] = []
  const lookup = createHostLookup({
    maxNames: 100,
    lookup: async (host) => {
      asked.push(host)
      return answers[host] ?? []
    },
  })
  return { asked, lookup }
}

t.test('a kept answer is checked on every use: narrowing allow_private refuses it at once', async (t) => {
  // A private answer to classify, never a destination: resolveChecked only checks addresses.
  const r = resolver({ 'internal.test': ['10.1.2.3'] })
  const open = await resolveChecked('internal.test', settings({ allowPrivate: [DOC, cidr('10.1.2.3/32')] }), r.lookup)
  t.same(open, { kind: 'resolved', address: '10.1.2.3' })
  const narrowed = await resolveChecked('internal.test', settings(), r.lookup)
  t.match(narrowed, { kind: 'unresolved', decision: { reason: 'denied_private_address' }, address: '10.1.2.3' })
  t.same(r.asked, ['internal.test'], 'the second use came from the cache, and was still refused')
})

t.test('one private address among kept public ones refuses the host', async (t) => {
  const r = resolver({ 'mixed.test': ['192.0.2.10', '127.0.0.1'] })
  for (let i = 0; i < 2; i++) {
    const got = await resolveChecked('mixed.test', settings(), r.lookup)
    t.match(got, { kind: 'unresolved', decision: { reason: 'denied_private_address' } }, `use ${i + 1}`)
  }
  t.equal(r.asked.length, 1)
})

t.test('a pin added by a reload wins over a kept answer, and pins are never asked for', async (t) => {
  const r = resolver({ 'moved.test': ['192.0.2.1'] })
  t.same(await resolveChecked('moved.test', settings(), r.lookup), { kind: 'resolved', address: '192.0.2.1' })
  const pinned = settings({ resolve: new Map([['moved.test', ['192.0.2.99']]]) })
  t.same(await resolveChecked('moved.test', pinned, r.lookup), { kind: 'resolved', address: '192.0.2.99' })
  t.same(r.asked, ['moved.test'])
})

t.test('dns_cache_ttl_ms 0 asks for every request', async (t) => {
  const r = resolver({ 'fresh.test': ['192.0.2.1'] })
  for (let i = 0; i < 3; i++) await resolveChecked('fresh.test', settings({ dnsCacheTtlMs: 0 }), r.lookup)
  t.equal(r.asked.length, 3)
})

t.test('a name that does not resolve is upstream_error dns, and asked again next time', async (t) => {
  const r = resolver({})
  for (let i = 0; i < 2; i++) {
    const got = await resolveChecked('nowhere.test', settings(), r.lookup)
    t.match(got, { kind: 'unresolved', decision: { reason: 'upstream_error', detail: 'dns' }, address: null })
  }
  t.equal(r.asked.length, 2)
})

t.test('resolveCheckedNow answers at once only what needs no lookup, checked the same way', async (t) => {
  const r = resolver({ 'kept.test': ['192.0.2.7'], 'inside.test': ['10.9.8.7'] })
  t.equal(resolveCheckedNow('kept.test', settings(), r.lookup), null, 'not asked yet: DNS must answer first')
  await resolveChecked('kept.test', settings(), r.lookup)
  t.same(resolveCheckedNow('kept.test', settings(), r.lookup), { kind: 'resolved', address: '192.0.2.7' })
  t.equal(resolveCheckedNow('kept.test', settings({ dnsCacheTtlMs: 0 }), r.lookup), null, 'TTL 0 keeps nothing')
  await resolveChecked('inside.test', settings(), r.lookup)
  t.match(resolveCheckedNow('inside.test', settings(), r.lookup), {
    kind: 'unresolved',
    decision: { reason: 'denied_private_address' },
    address: '10.9.8.7',
  })
  const pinned = settings({
    resolve: new Map([
      ['kept.test', ['192.0.2.99']],
      ['empty.test', []],
    ]),
  })
  t.same(resolveCheckedNow('kept.test', pinned, r.lookup), { kind: 'resolved', address: '192.0.2.99' }, 'a pin wins')
  t.match(resolveCheckedNow('empty.test', pinned, r.lookup), { kind: 'unresolved', decision: { detail: 'dns' } })
  t.same(resolveCheckedNow('192.0.2.5', settings(), r.lookup), { kind: 'resolved', address: '192.0.2.5' })
  t.match(resolveCheckedNow('127.0.0.2', settings(), r.lookup), { decision: { reason: 'denied_private_address' } })
  t.same(r.asked, ['kept.test', 'inside.test'], 'nothing asked by resolveCheckedNow')
})
