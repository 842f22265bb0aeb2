import { Writable } from 'node:stream'
import t from 'tap'
import { buildDecisionRecord } from '../../../src/telemetry/events.js'
import { createLoggers, createLogSink } from '../../../src/telemetry/log-sink.js'

function capture(): { dest: Writable; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = []
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      cb()
    },
  })
  return { dest, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

const record = buildDecisionRecord(
  { id: '01JDTEST', agent: 'ci-42', src: '127.0.0.9:51234', method: 'GET', scheme: 'https', host: 'pypi.org', port: 443, path: '/simple/x/', tls: 'intercept', mode: 'enforce', address: '127.0.0.1' },
  { verdict: 'deny', reason: 'denied_rate_limited', ruleId: null, detail: 'requests_per_minute' },
  false,
)

t.test('json: the SPEC record, with pino level', async (t) => {
  const { dest, lines } = capture()
  createLogSink(createLoggers('info', dest, 'json').records, 'json').write(record)
  t.match(lines()[0], { level: 'warn', event: 'decision', agent: 'ci-42', host: 'pypi.org', reason: 'denied_rate_limited', detail: 'requests_per_minute' })
})

t.test('ecs: the same facts under Elastic Common Schema names', async (t) => {
  const { dest, lines } = capture()
  createLogSink(createLoggers('info', dest, 'ecs').records, 'ecs').write(record)
  const line = lines()[0] ?? {}
  t.match(line, {
    'log.level': 'warn',
    '@timestamp': record.time,
    'event.outcome': 'failure',
    'event.reason': 'denied_rate_limited',
    'user.name': 'ci-42',
    'source.ip': '127.0.0.9',
    'destination.domain': 'pypi.org',
    'destination.port': 443,
    'destination.ip': '127.0.0.1',
    'url.path': '/simple/x/',
    'http.request.method': 'GET',
    'portcullis.detail': 'requests_per_minute',
  })
  t.notOk('level' in line, 'no SPEC-style level key beside log.level')
})
