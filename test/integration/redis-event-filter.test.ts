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
