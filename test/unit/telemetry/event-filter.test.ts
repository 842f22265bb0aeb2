import t from 'tap'
import { isQueryError, parseEventQuery, type EventQuery } from '../../../src/admin/event-query.js'
import { matchesFilter } from '../../../src/telemetry/event-filter.js'
import { FILTER_CASES, NOW } from '../../fixtures/event-filter-cases.js'

function parse(qs: string): EventQuery {
  const q = parseEventQuery(new URLSearchParams(qs), NOW)
  if (isQueryError(q)) throw new Error(q.error)
  return q
}

for (const c of FILTER_CASES) {
  t.test(`${c.behaviour} (${c.query || 'no query'})`, async (t) => {
    t.equal(matchesFilter(c.record, parse(c.query)), c.expected)
  })
}
