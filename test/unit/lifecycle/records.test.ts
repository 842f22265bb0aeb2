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
