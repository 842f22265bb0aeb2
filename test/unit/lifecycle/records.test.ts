import t from 'tap'
import { parseLogLine, requestsOf } from '../../../src/lifecycle/records.js'
import { toEcs } from '../../../src/telemetry/log-sink.js'
import { rec } from '../../helpers/decision-records.js'

const RECORD = rec('ci', 'GET https://github.com/o/r.git/info/refs', {
  reason: 'denied_path',
  rule: 'g.allow[0]',
  detail: 'ambiguous_path',
  mode: 'audit',
  would_deny: true,
  address: '140.82.112.3',
})

t.test('a JSON log line (level first, then the record) is read back as the record', async (t) => {
  const line = `{"level":"warn",${JSON.stringify(RECORD).slice(1)}`
  t.same(parseLogLine(line), RECORD)
})

t.test('an ECS log line (telemetry.log.format: ecs) is read back with the same facts', async (t) => {
  const line = JSON.stringify({ 'log.level': 'warn', ...toEcs(RECORD) })
  t.same(parseLogLine(line), RECORD)
})

t.test("an ECS line keeps a record's optional fields: sandbox, fold count, push, hashes, fronted name", async (t) => {
  const full = rec('ci', 'GET https://github.com/o/r.git/info/refs', {
    sandbox: '01JD0000000000000000000000',
    labels: { task: 'T-1' },
    sandbox_expires_at: '2026-12-07T12:00:00.000Z',
    repeats: 4,
    git: { refs: [{ ref: 'refs/heads/x', old: '0'.repeat(40), new: '1'.repeat(40), refused: 'ref_not_allowed' }] },
    path_sha256: 'ab'.repeat(32),
    sni: 'fronted.example',
  })
  const ecs = toEcs(full)
  t.match(ecs, { 'portcullis.sandbox': full.sandbox, 'portcullis.labels': { task: 'T-1' }, 'portcullis.repeats': 4 })
  const back = parseLogLine(JSON.stringify({ 'log.level': 'warn', ...ecs }))
  t.same(back, full, 'and reads them back')
  t.equal(back === null ? 0 : requestsOf(back), 5, 'so suggest counts the folded requests from an ECS log too')
})

t.test('nested ECS fields, as other shippers write them, are read too', async (t) => {
  const nested = {
    '@timestamp': RECORD.time,
    event: { action: 'decision', id: RECORD.id, outcome: 'failure', reason: 'denied_no_rule' },
    user: { name: 'ci' },
    source: { ip: '10.1.2.3' },
    http: { request: { method: 'CONNECT' } },
    url: { scheme: 'https' },
    destination: { domain: 'a.example.com', port: 443 },
  }
  t.match(parseLogLine(JSON.stringify(nested)), {
    agent: 'ci',
    method: 'CONNECT',
    host: 'a.example.com',
    port: 443,
    path: null,
    decision: 'deny',
    reason: 'denied_no_rule',
    src: '10.1.2.3',
  })
})

const NOT_RECORDS: ReadonlyArray<readonly [string, string]> = [
  ['an operational line', '{"level":"info","time":"2026-11-25T10:00:00.000Z","code":"PC_STARTED","msg":"listening"}'],
  ['a close record', '{"level":"info","time":"2026-11-25T10:00:00.000Z","id":"x","event":"close","bytes_up":1}'],
  [
    'a decision with an unknown reason',
    `{"event":"decision",${JSON.stringify({ ...RECORD, reason: 'denied_by_magic' }).slice(1)}`,
  ],
  ['a decision without a port', `${JSON.stringify({ ...RECORD, port: '443' })}`],
  ['text', 'portcullis listening on 127.0.0.1:3128'],
  ['broken JSON', '{"event":"decision",'],
  ['an array', '[1,2]'],
]

for (const [name, line] of NOT_RECORDS)
  t.test(`${name} is not a record`, async (t) => {
    t.equal(parseLogLine(line), null)
  })

t.test('a record stands for itself and its folded repeats', async (t) => {
  t.equal(requestsOf(RECORD), 1)
  t.equal(requestsOf({ ...RECORD, repeats: 9 }), 10)
})
