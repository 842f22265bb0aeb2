import t from 'tap'
import { isQueryError, parseEventQuery, queryRing, type EventQuery } from '../../../src/admin/event-query.js'
import type { DecisionRecord, TelemetryRecord } from '../../../src/telemetry/events.js'
import { closeOf, decision, NOW } from '../../fixtures/event-filter-cases.js'

function parse(qs: string): EventQuery {
  const q = parseEventQuery(new URLSearchParams(qs), NOW)
  if (isQueryError(q)) throw new Error(q.error)
  return q
}

t.test('parseEventQuery', async (t) => {
  const CASES: ReadonlyArray<readonly [string, Partial<EventQuery>, string]> = [
    ['', { limit: 100 }, 'defaults to limit 100 and no filters'],
    ['decision=deny&agent=ci-42', { decision: 'deny', agent: 'ci-42', limit: 100 }, 'decision and agent'],
    ['host=GitHub.COM.', { host: 'github.com', limit: 100 }, 'host is normalised'],
    ['host=*.Example.com', { host: '*.example.com', limit: 100 }, '`*.suffix` is kept as a wildcard, normalised'],
    ['reason=denied_path', { reason: 'denied_path', limit: 100 }, 'a reason code'],
    ['since=15m', { since: new Date(NOW.getTime() - 15 * 60_000), limit: 100 }, '`15m` means now minus 15 minutes'],
    [
      'since=7d&until=1h',
      { since: new Date(NOW.getTime() - 7 * 86_400_000), until: new Date(NOW.getTime() - 3600_000), limit: 100 },
      'relative since and until',
    ],
    ['since=2026-11-25T10:00:00Z', { since: new Date('2026-11-25T10:00:00Z'), limit: 100 }, 'an ISO time'],
    ['since=999999999w', { since: new Date(0), limit: 100 }, 'a duration reaching before 1970 means from the start'],
    ['limit=1000', { limit: 1000 }, 'the maximum limit'],
    [
      'cursor=01jd0000000000000000000000',
      { cursor: '01JD0000000000000000000000', limit: 100 },
      'a cursor is upper-cased',
    ],
    ['agent=', { limit: 100 }, 'an empty parameter is absent'],
  ]
  for (const [qs, expected, behaviour] of CASES) {
    t.test(`\`${qs}\` — ${behaviour}`, async (t) => {
      t.strictSame(parseEventQuery(new URLSearchParams(qs), NOW), expected)
    })
  }
  const BAD: ReadonlyArray<readonly [string, RegExp, string]> = [
    ['decision=maybe', /decision must be/, 'decision outside allow|deny'],
    ['reason=denied_because', /not a reason code/, 'a reason outside the closed set'],
    ['since=yesterday', /since must be an ISO time/, 'a since that is neither time nor duration'],
    ['until=12', /until must be/, 'a bare number is not a time'],
    ['since=1h&until=2h', /since must be earlier than until/, 'since after until'],
    ['limit=0', /limit must be an integer from 1 to 1000/, 'limit 0'],
    ['limit=1001', /limit must be/, 'limit above the maximum'],
    ['limit=10.5', /limit must be/, 'a fractional limit'],
    ['cursor=abc', /cursor must be/, 'a cursor that is not an id'],
    ['cursor=99999999999999999999-0', /cursor must be/, 'a stream id past 64 bits (Redis would refuse it)'],
    ['cursor=1-18446744073709551616', /cursor must be/, 'its sequence past 64 bits'],
    ['host=a b', /not a valid host/, 'a host with a space'],
    ['host=*', /not a valid host/, 'a bare `*`'],
    ['agent=a%0Ab', /agent must be/, 'an agent with a newline'],
    ['agnet=x', /unknown parameter 'agnet'/, 'a misspelt parameter'],
    ['agent=a&agent=b', /more than once/, 'a repeated parameter'],
  ]
  for (const [qs, message, behaviour] of BAD) {
    t.test(`\`${qs}\` is refused — ${behaviour}`, async (t) => {
      const q = parseEventQuery(new URLSearchParams(qs), NOW)
      t.ok(isQueryError(q))
      t.match(q, { error: message })
    })
  }
})

t.test('queryRing', async (t) => {
  const ring: TelemetryRecord[] = []
  for (let m = 0; m < 10; m++)
    ring.push(decision(m, { decision: m % 2 ? 'allow' : 'deny', reason: m % 2 ? 'allowed' : 'denied_path' }))

  t.test('newest first, limited, with a cursor that pages strictly before', async (t) => {
    const all = ring.filter((r) => r.event === 'decision' && r.decision === 'deny').reverse()
    const p1 = queryRing(ring, parse('decision=deny&limit=2'))
    t.strictSame(
      p1.records.map((r) => r.id),
      all.slice(0, 2).map((r) => r.id),
    )
    t.equal(p1.nextCursor, all[1]?.id)
    const p2 = queryRing(ring, parse(`decision=deny&limit=2&cursor=${p1.nextCursor}`))
    t.strictSame(
      p2.records.map((r) => r.id),
      all.slice(2, 4).map((r) => r.id),
    )
    const p3 = queryRing(ring, parse(`decision=deny&limit=2&cursor=${p2.nextCursor}`))
    t.strictSame(
      p3.records.map((r) => r.id),
      all.slice(4, 5).map((r) => r.id),
    )
    t.equal(p3.nextCursor, null, 'the last page has no cursor')
  })

  t.test('an exactly full last page has no cursor', async (t) => {
    t.equal(queryRing(ring, parse('decision=deny&limit=5')).nextCursor, null)
  })

  t.test('orders by id even when records were published out of order', async (t) => {
    const early = decision(20)
    const late = decision(21)
    const page = queryRing([late, early], parse(''))
    t.strictSame(
      page.records.map((r) => r.id),
      [late.id, early.id],
    )
  })

  t.test('a page never splits records that share an id', async (t) => {
    const a = decision(30)
    const b = decision(31)
    const recs: TelemetryRecord[] = [a, b, closeOf(b), closeOf(a)]
    const p1 = queryRing(recs, parse('limit=3'))
    t.strictSame(p1.records, [closeOf(b), b], 'the group of `a` moves to the next page')
    const p2 = queryRing(recs, parse(`limit=3&cursor=${p1.nextCursor}`))
    t.strictSame(p2.records, [closeOf(a), a])
    t.equal(p2.nextCursor, null)
    const tiny = queryRing(recs, parse('limit=1'))
    t.strictSame(tiny.records, [closeOf(b), b], 'a group larger than the page grows the page')
    t.equal(tiny.nextCursor, b.id)
  })

  t.test('filters and since apply before paging', async (t) => {
    const page = queryRing(ring, parse('decision=allow&since=175m'))
    t.strictSame(
      page.records.map((r) => (r as DecisionRecord).time),
      [decision(9).time, decision(7).time, decision(5).time],
    )
  })
})
