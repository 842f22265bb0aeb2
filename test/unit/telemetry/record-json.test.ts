import t from 'tap'
import {
  buildCloseRecord,
  buildDecisionRecord,
  newRequestId,
  type DecisionFacts,
} from '../../../src/telemetry/events.js'
import { recordJson } from '../../../src/telemetry/record-json.js'
import type { Decision } from '../../../src/policy/types.js'

// recordJson writes the usual decision and close records by hand: its text must be JSON.stringify's,
// byte for byte, whatever the strings hold, and any other shape must fall back to JSON.stringify.

/** Pieces JSON escapes or treats specially, and ones it leaves alone. */
const PIECES = [
  'a',
  '/v1/x',
  '"',
  '\\',
  '\u0000',
  '\n',
  '\r',
  '\t',
  '\u001f',
  '\u007f',
  'é',
  '中',
  '\u2028',
  '\u2029',
  '\ud83d\ude00',
  '\ud800',
  '\udfff',
  '\udfff\ud800',
  '</script>',
  '${x}',
  '',
]

let seed = 7
function rand(n: number): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed % n
}
function hostile(): string {
  let s = ''
  for (let i = rand(4); i >= 0; i--) s += PIECES[rand(PIECES.length)] as string
  return s
}

const ALLOW: Decision = { verdict: 'allow', reason: 'allowed', ruleId: 'ci.allow[0]' }

function facts(over: Partial<DecisionFacts> = {}): DecisionFacts {
  return {
    id: newRequestId(),
    agent: 'ci',
    src: '127.0.0.1:40000',
    method: 'GET',
    scheme: 'https',
    host: 'api.test',
    port: 443,
    path: '/v1/items',
    tls: 'intercept',
    mode: 'enforce',
    address: '127.0.0.1',
    ...over,
  }
}

t.test('usual records: the same text as JSON.stringify', async (t) => {
  const d = buildDecisionRecord(facts(), ALLOW, false)
  t.equal(recordJson(d), JSON.stringify(d))
  const nulls = buildDecisionRecord(facts({ agent: null, path: null, tls: null, address: null }), ALLOW, true)
  t.equal(recordJson(nulls), JSON.stringify(nulls))
  const c = buildCloseRecord({ id: 'x', agent: 'ci', host: 'api.test' }, 10, 2048, Date.now() - 5)
  t.equal(recordJson(c), JSON.stringify(c))
  const anon = buildCloseRecord({ id: 'x', agent: null, host: 'api.test' }, 0, 0, Date.now())
  t.equal(recordJson(anon), JSON.stringify(anon))
  t.same(JSON.parse(recordJson(d)), d, 'parses back to the record')
})

t.test('hostile strings in every field', async (t) => {
  let mismatches = 0
  for (let i = 0; i < 3000; i++) {
    const d = buildDecisionRecord(
      facts({
        agent: hostile(),
        src: hostile(),
        method: hostile(),
        host: hostile(),
        path: hostile(),
        address: hostile(),
      }),
      { verdict: 'allow', reason: 'allowed', ruleId: hostile() },
      i % 2 === 0,
    )
    if (recordJson(d) !== JSON.stringify(d)) mismatches++
    const c = buildCloseRecord({ id: hostile(), agent: hostile(), host: hostile() }, i, i * 7, Date.now() - i)
    if (recordJson(c) !== JSON.stringify(c)) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('other shapes and odd values are JSON.stringify itself', async (t) => {
  const deny = buildDecisionRecord(
    facts(),
    { verdict: 'deny', reason: 'denied_path', ruleId: null, detail: 'x"y' },
    false,
  )
  const sandbox = buildDecisionRecord(facts({ sandbox: 'sbx_1', labels: { task: 'T-"1' } }), ALLOW, false)
  const long = buildDecisionRecord(facts({ path: `/${'a'.repeat(5000)}` }), ALLOW, false)
  const folded = { ...buildDecisionRecord(facts(), ALLOW, false), repeats: 3 }
  const closeSb = buildCloseRecord({ id: 'x', agent: 'ci', host: 'h', sandbox: 'sbx_1', labels: {} }, 1, 2, 0, 10)
  const odd = [
    { ...buildDecisionRecord(facts(), ALLOW, false), port: Number.NaN },
    { ...buildDecisionRecord(facts(), ALLOW, false), agent: undefined },
    { ...buildDecisionRecord(facts(), ALLOW, false), would_deny: 'no' },
    { ...buildDecisionRecord(facts(), ALLOW, false), path: 12 },
    { ...buildCloseRecord({ id: 'x', agent: 'ci', host: 'h' }, 1, 2, 0, 10), bytes_up: Infinity },
    { ...buildCloseRecord({ id: 'x', agent: 'ci', host: 'h' }, 1, 2, 0, 10), host: null },
  ]
  for (const r of [deny, sandbox, long, folded, closeSb, ...odd]) t.equal(recordJson(r), JSON.stringify(r))
})

t.test('one text per record object', async (t) => {
  const a = buildDecisionRecord(facts(), ALLOW, false)
  const b = { ...a, host: 'other.test' }
  const first = recordJson(a)
  t.equal(recordJson(a), first)
  t.equal(recordJson(b), JSON.stringify(b))
  t.equal(recordJson(a), first)
})
