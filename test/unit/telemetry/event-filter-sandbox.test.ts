import t from 'tap'
import { isQueryError, parseEventQuery } from '../../../src/admin/event-query.js'
import { matchesFilter } from '../../../src/telemetry/event-filter.js'
import { buildCloseRecord, buildDecisionRecord, type DecisionFacts } from '../../../src/telemetry/events.js'

/** The sandbox filters (SPEC §9) of /api/events, the live stream, `blocked` and the Redis reader. */
const NOW = new Date('2026-11-25T10:00:00Z')
const SB = '01JDQ9Z8K3M5V7X9B2C4D6F8G0'
const facts: DecisionFacts = {
  id: '01JDQ9Z8K3M5V7X9B2C4D6F8G1',
  agent: 'ci',
  src: '127.0.0.1:1',
  method: 'GET',
  scheme: 'http',
  host: 'a.test',
  port: 80,
  path: '/',
  tls: null,
  mode: 'enforce',
  address: null,
  sandbox: SB,
  labels: { task: 'T-1', team: 'infra' },
}
const allow = { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' } as const
const sandboxed = buildDecisionRecord(facts, allow, false, NOW)
const plain = buildDecisionRecord({ ...facts, sandbox: undefined, labels: undefined }, allow, false, NOW)
const closed = buildCloseRecord(facts, 1, 2, NOW.getTime(), NOW.getTime())

function q(query: string) {
  const parsed = parseEventQuery(new URLSearchParams(query), NOW)
  if (isQueryError(parsed)) throw new Error(parsed.error)
  return parsed
}

t.test('records carry sandbox and labels only when there is a sandbox', async (t) => {
  t.match(sandboxed, { agent: 'ci', sandbox: SB, labels: { task: 'T-1' } })
  t.notOk('sandbox' in plain || 'labels' in plain)
  t.match(closed, { sandbox: SB, labels: { team: 'infra' } })
})

const cases: Array<[string, string, boolean, boolean, boolean]> = [
  // [behaviour, query, sandbox decision, plain decision, sandbox close]
  ['a sandbox id selects its records (any case)', `sandbox=${SB.toLowerCase()}`, true, false, true],
  ['another sandbox id selects none', 'sandbox=01JDQ9Z8K3M5V7X9B2C4D6F8G9', false, false, false],
  ['a label that holds', 'label=task%3DT-1', true, false, true],
  ['a label with another value', 'label=task%3DT-2', false, false, false],
  ['every label must hold', 'label=task%3DT-1&label=team%3Dinfra', true, false, true],
  ['one label that does not hold is enough to miss', 'label=task%3DT-1&label=team%3Dops', false, false, false],
  ['decision records only, with a label', 'label=task%3DT-1&decision=allow', true, false, false],
  ['an agent filter still matches a sandbox of it', 'agent=ci', true, true, true],
]
for (const [name, query, a, b, c] of cases)
  t.test(name, async (t) => {
    t.equal(matchesFilter(sandboxed, q(query)), a, 'sandbox decision')
    t.equal(matchesFilter(plain, q(query)), b, 'plain decision')
    t.equal(matchesFilter(closed, q(query)), c, 'sandbox close')
  })

t.test('anySandbox selects every sandbox record', async (t) => {
  t.ok(matchesFilter(sandboxed, { anySandbox: true }))
  t.notOk(matchesFilter(plain, { anySandbox: true }))
})

t.test('bad sandbox filters are usage errors naming the parameter', async (t) => {
  for (const [query, message] of [
    ['sandbox=ci', /sandbox must be a sandbox id/],
    ['label=novalue', /label must be key=value/],
    ['label==x', /label must be key=value/],
    [Array.from({ length: 9 }, (_, i) => `label=k${i}%3Dv`).join('&'), /at most 8/],
    [`sandbox=${SB}&sandbox=${SB}`, /given more than once/],
  ] as const) {
    const r = parseEventQuery(new URLSearchParams(query), NOW)
    t.ok(isQueryError(r) && message.test(r.error), `${query}: ${JSON.stringify(r)}`)
  }
})
