import { createHash } from 'node:crypto'
import t from 'tap'
import { decodeTime } from 'ulid'
import {
  buildCloseRecord,
  buildDecisionRecord,
  isoTime,
  newRequestId,
  RECORDED_PATH_CHARS,
  RECORDED_REF_CHARS,
  RECORDED_REFS,
  type DecisionFacts,
} from '../../../src/telemetry/events.js'

const FACTS: DecisionFacts = {
  id: '01JD0000000000000000000000',
  agent: 'ci-42',
  src: '10.1.2.3:51234',
  method: 'GET',
  scheme: 'https',
  host: 'github.com',
  port: 443,
  path: '/acme/other.git/info/refs',
  tls: 'intercept',
  mode: 'enforce',
  address: '140.82.112.3',
}
const NOW = new Date('2026-11-25T10:00:00.000Z')

t.test('a decision record has the SPEC §4 fields, in order', async (t) => {
  const r = buildDecisionRecord(
    FACTS,
    { verdict: 'deny', reason: 'denied_path', ruleId: 'builders.allow[2]' },
    false,
    NOW,
  )
  t.same(Object.keys(r), [
    'time',
    'id',
    'event',
    'agent',
    'src',
    'method',
    'scheme',
    'host',
    'port',
    'path',
    'tls',
    'decision',
    'reason',
    'rule',
    'mode',
    'would_deny',
    'address',
  ])
  t.match(r, { time: '2026-11-25T10:00:00.000Z', decision: 'deny', reason: 'denied_path', rule: 'builders.allow[2]' })
})

t.test('a denial detail is kept; an allow has none', async (t) => {
  const d = buildDecisionRecord(
    FACTS,
    { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: 'timeout' },
    false,
  )
  t.equal(d.detail, 'timeout')
  const a = buildDecisionRecord(FACTS, { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' }, false)
  t.notOk('detail' in a)
})

t.test('a long path is cut, with the sha256 of the whole', async (t) => {
  const path = `/${'x'.repeat(15_000)}`
  const r = buildDecisionRecord({ ...FACTS, path }, { verdict: 'deny', reason: 'denied_path', ruleId: null }, false)
  t.equal(r.path?.length, RECORDED_PATH_CHARS)
  t.ok(r.path?.endsWith('…'))
  t.equal(r.path_sha256, createHash('sha256').update(path).digest('hex'))
  t.notOk('path_sha256' in buildDecisionRecord(FACTS, { verdict: 'allow', reason: 'allowed', ruleId: 'x' }, false))
})

t.test("a push's refs are capped in number and length, saying how many there were", async (t) => {
  const zero = '0'.repeat(40)
  const one = '1'.repeat(40)
  const long = `refs/heads/${'b'.repeat(4000)}`
  const refs = Array.from({ length: 240 }, (_, i) => ({
    ref: `${long}${i}`,
    old: zero,
    new: one,
    refused: 'ref_not_allowed',
  }))
  const deny = { verdict: 'deny', reason: 'denied_git_push', ruleId: null } as const
  const r = buildDecisionRecord({ ...FACTS, git: { refs } }, deny, false)
  t.equal(r.git?.refs.length, RECORDED_REFS)
  t.equal(r.git?.refs_total, 240)
  t.equal(r.git?.refs[0]?.ref.length, RECORDED_REF_CHARS)
  t.equal(r.git?.refs[0]?.ref_sha256, createHash('sha256').update(`${long}0`).digest('hex'))
  t.match(r.git?.refs[0], { old: zero, new: one, refused: 'ref_not_allowed' })
  t.ok(JSON.stringify(r).length < 4096, `the record stays small (${JSON.stringify(r).length} characters; 1 MB before)`)
  const small = { refs: [{ ref: 'refs/heads/agent/ci/x', old: zero, new: one }] }
  t.same(buildDecisionRecord({ ...FACTS, git: small }, deny, false).git, small, 'a usual push is recorded as it is')
})

t.test('a close record counts bytes and duration', async (t) => {
  t.same(buildCloseRecord({ id: 'x', agent: 'a', host: 'h' }, 10, 20, 1000, 1381), {
    time: '1970-01-01T00:00:01.381Z',
    id: 'x',
    event: 'close',
    agent: 'a',
    host: 'h',
    bytes_up: 10,
    bytes_down: 20,
    duration_ms: 381,
  })
})

t.test('request ids are ULIDs: Crockford base32, the time of issue, strictly increasing', async (t) => {
  const before = Date.now()
  const ids = Array.from({ length: 5000 }, () => newRequestId())
  const after = Date.now()
  for (const id of ids) t.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/)
  const times = ids.map((id) => decodeTime(id))
  t.ok(
    times.every((ms) => ms >= before && ms <= after),
    'the time part is when it was issued (ulid decodes it)',
  )
  t.ok(
    ids.every((id, i) => i === 0 || id > (ids[i - 1] as string)),
    'each id sorts after the one before, within a millisecond too',
  )
  t.equal(new Set(ids.map((id) => id.slice(10))).size, ids.length, 'the random parts differ')
})

t.test('isoTime is the ISO 8601 time of a millisecond, whichever was asked before', async (t) => {
  t.equal(isoTime(0), '1970-01-01T00:00:00.000Z')
  t.equal(isoTime(NOW.getTime()), NOW.toISOString())
  t.equal(isoTime(NOW.getTime()), NOW.toISOString())
  t.equal(isoTime(NOW.getTime() + 1), '2026-11-25T10:00:00.001Z')
})
