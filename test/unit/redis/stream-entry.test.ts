import t from 'tap'
import { isQueryError, parseEventQuery, type EventQuery } from '../../../src/admin/event-query.js'
import { decodeStreamEntry, encodeStreamEntry, entryField, entryMayMatch } from '../../../src/redis/stream-entry.js'
import { matchesFilter } from '../../../src/telemetry/event-filter.js'
import { approvalOf, closeOf, decision, FILTER_CASES, NOW } from '../../fixtures/event-filter-cases.js'

function parse(qs: string): EventQuery {
  const q = parseEventQuery(new URLSearchParams(qs), NOW)
  if (isQueryError(q)) throw new Error(q.error)
  return q
}

t.test('an encoded record decodes to itself, with its flat fields beside it', async (t) => {
  const d = decision(1)
  for (const r of [d, closeOf(d), approvalOf(d)]) {
    const fields = encodeStreamEntry(r, 'host:1:ab')
    t.strictSame(decodeStreamEntry(fields), r, `${r.event} round-trips`)
    t.equal(entryField(fields, 'event'), r.event)
    t.equal(entryField(fields, 'id'), r.id)
    t.equal(entryField(fields, 'instance'), 'host:1:ab')
    t.equal(entryField(fields, 'agent'), 'ci-42')
  }
  t.strictSame(encodeStreamEntry(d).slice(2), [
    'event',
    'decision',
    'id',
    d.id,
    'agent',
    'ci-42',
    'decision',
    'deny',
    'reason',
    'denied_path',
  ])
  t.equal(entryField(encodeStreamEntry(closeOf(d)), 'decision'), undefined, 'only decisions carry decision and reason')
  t.equal(entryField(encodeStreamEntry(decision(1, { agent: null })), 'agent'), undefined, 'no agent, no agent field')
  t.equal(entryField(encodeStreamEntry(d), 'instance'), undefined, 'no instance, no instance field')
})

t.test('an entry this version cannot read decodes to null', async (t) => {
  const CASES: ReadonlyArray<readonly [readonly string[], string]> = [
    [[], 'no r field'],
    [['r', '{not json'], 'r is not JSON'],
    [['r', '"a string"'], 'r is not an object'],
    [['r', 'null'], 'r is null'],
    [['r'], 'a field name without a value'],
  ]
  for (const [fields, behaviour] of CASES) t.equal(decodeStreamEntry(fields), null, behaviour)
})

t.test('the flat-field pre-check never skips an entry the filter would select', async (t) => {
  for (const c of FILTER_CASES) {
    const q = parse(c.query)
    const fields = encodeStreamEntry(c.record, 'i')
    const decoded = decodeStreamEntry(fields)
    const selected = entryMayMatch(fields, q) && decoded !== null && matchesFilter(decoded, q)
    t.equal(selected, c.expected, `${c.behaviour} (${c.query || 'no query'})`)
  }
})
