import t from 'tap'
import { isQueryError, parseEventQuery } from '../../src/admin/event-query.js'
import { encodeStreamEntry } from '../../src/redis/stream-entry.js'
import { matchesFilter } from '../../src/telemetry/event-filter.js'
import { readEvents } from '../../src/telemetry/redis-events.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { FILTER_CASES, NOW } from '../fixtures/event-filter-cases.js'

/**
 * The Redis stream reader selects what the event filter selects: each shared case's record is
 * written as the sink writes it (at its own time) to a real redis-server and read back with the
 * case's query.
 */
t.test('readEvents over a real stream agrees with the event filter on every shared case', async (t) => {
  const redis = await startRedis(t)
  const client = redisClient(t, redis.url)
  let n = 0
  for (const c of FILTER_CASES) {
    const stream = `filter-case-${n++}`
    await client.xadd(stream, `${Date.parse(c.record.time)}-1`, ...encodeStreamEntry(c.record, 'writer'))
    const q = parseEventQuery(new URLSearchParams(c.query), NOW)
    if (isQueryError(q)) throw new Error(q.error)
    const page = await readEvents(client, stream, q)
    t.equal(page.records.length === 1, matchesFilter(c.record, q), `${c.behaviour} (${c.query || 'no query'})`)
    if (page.records.length === 1) t.strictSame(page.records[0], c.record, 'the record read back is the one written')
  }
})

t.test('readEvents: a scan out of time answers with a cursor that continues where it stopped', async (t) => {
  const redis = await startRedis(t)
  const client = redisClient(t, redis.url)
  const found = FILTER_CASES.find((c) => c.record.event === 'decision' && c.record.decision === 'deny')
  if (found === undefined) throw new Error('no denial among the shared cases')
  const denial = found.record
  const noise = { ...denial, decision: 'allow', reason: 'allowed' } as typeof denial
  await client.xadd('s', '1-1', ...encodeStreamEntry(denial, 'w'))
  const batch = client.pipeline()
  for (let i = 0; i < 3000; i++) batch.xadd('s', '*', ...encodeStreamEntry(noise, 'w'))
  await batch.exec()
  const q = { decision: 'deny' as const, limit: 5 }
  const first = await readEvents(client, 's', q, { budgetMs: 0 })
  t.same(first.records, [], 'one batch scanned, no match in it')
  t.ok(first.nextCursor, 'and a cursor, since more remains')
  let page = first
  for (let i = 0; i < 10 && page.records.length === 0 && page.nextCursor !== null; i++)
    page = await readEvents(client, 's', { ...q, cursor: page.nextCursor }, { budgetMs: 0 })
  t.same(page.records, [denial], 'following the cursor reaches the denial')
  t.equal(page.nextCursor, null, 'at the stream start')
  t.same(await readEvents(client, 's', q), { records: [denial], nextCursor: null }, 'within the budget: one call')
})
