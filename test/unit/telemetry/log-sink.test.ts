import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { buildCloseRecord, buildDecisionRecord } from '../../../src/telemetry/events.js'
import { batchedDestination, createLoggers, createLogSink } from '../../../src/telemetry/log-sink.js'

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

t.test('record lines are byte for byte what pino would write for the same record', async (t) => {
  const { dest, lines } = capture()
  const raw: string[] = []
  const viaPino = pino({ level: 'info', formatters: { level: (label: string) => ({ level: label }) }, timestamp: false, base: null }, { write: (s: string) => void raw.push(s) })
  const odd = buildDecisionRecord(
    { id: '01JDODD', agent: 'a"b\\c', src: '[::1]:1', method: 'GET', scheme: 'http', host: 'h.test', port: 80, path: '/\u2028x\ud800y\u0001', tls: null, mode: 'audit', address: null },
    { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' },
    false,
  )
  const loggers = createLoggers('info', dest, 'json')
  const sink = createLogSink(loggers.records, 'json')
  for (const r of [record, odd, buildCloseRecord({ id: 'c', agent: null, host: 'h.test' }, 1, 2, 0, 5)]) sink.write(r)
  viaPino.warn(record)
  viaPino.info(odd)
  viaPino.info(buildCloseRecord({ id: 'c', agent: null, host: 'h.test' }, 1, 2, 0, 5))
  await new Promise((r) => setImmediate(r))
  t.same(lines(), raw.map((l) => JSON.parse(l) as unknown))
  t.same(
    lines().map((l) => Object.keys(l)),
    raw.map((l) => Object.keys(JSON.parse(l) as object)),
    'same keys in the same order',
  )
})

t.test('record lines below the log level are dropped; denials stay at level warn', async (t) => {
  const { dest, lines } = capture()
  const sink = createLogSink(createLoggers('warn', dest, 'json').records, 'json')
  sink.write(buildDecisionRecord(record, { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' }, false))
  sink.write(buildCloseRecord(record, 1, 2, 0, 5))
  sink.write(record)
  sink.write(buildDecisionRecord(record, { verdict: 'deny', reason: 'denied_internal_error', ruleId: null }, false))
  await new Promise((r) => setImmediate(r))
  t.same(
    lines().map((l) => [l.level, l.reason]),
    [
      ['warn', 'denied_rate_limited'],
      ['error', 'denied_internal_error'],
    ],
  )
})

t.test('batched destination: lines in order, a batch at ~8 KiB, the rest on flushSync or after 0.1 s', async (t) => {
  const writes: string[] = []
  let syncs = 0
  const d = batchedDestination({ write: (s: string) => void writes.push(s), flushSync: () => void syncs++ })
  const line = (i: number): string => `${JSON.stringify({ i, pad: 'x'.repeat(90) })}\n`
  for (let i = 0; i < 100; i++) d.write(line(i))
  t.equal(writes.length, 1, '100 lines of ~100 chars: one batch written, the rest waits')
  t.ok((writes[0]?.length ?? 0) >= 8 * 1024)
  d.flushSync()
  t.equal(syncs, 1)
  t.equal(writes.join(''), Array.from({ length: 100 }, (_, i) => line(i)).join(''), 'every line, in order, nothing twice')
  d.write(line(100))
  await new Promise((r) => setTimeout(r, 250))
  t.equal(writes.at(-1), line(100), 'a lone line is written after the flush interval')
})
