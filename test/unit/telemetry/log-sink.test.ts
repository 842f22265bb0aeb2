import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { captureLines } from '../../helpers/log.js'
import { until } from '../../helpers/poll.js'
import { pino } from 'pino'
import t from 'tap'
import { buildCloseRecord, buildDecisionRecord } from '../../../src/telemetry/events.js'
import { bufferedDestination, createLoggers, createLogSink } from '../../../src/telemetry/log-sink.js'

const record = buildDecisionRecord(
  {
    id: '01JDTEST',
    agent: 'ci-42',
    src: '127.0.0.9:51234',
    method: 'GET',
    scheme: 'https',
    host: 'pypi.org',
    port: 443,
    path: '/simple/x/',
    tls: 'intercept',
    mode: 'enforce',
    address: '127.0.0.1',
  },
  { verdict: 'deny', reason: 'denied_rate_limited', ruleId: null, detail: 'requests_per_minute' },
  false,
)

t.test('json: the SPEC record, with pino level', async (t) => {
  const { dest, lines } = captureLines()
  createLogSink(createLoggers('info', dest, 'json').records, 'json').write(record)
  t.match(lines()[0], {
    level: 'warn',
    event: 'decision',
    agent: 'ci-42',
    host: 'pypi.org',
    reason: 'denied_rate_limited',
    detail: 'requests_per_minute',
  })
})

t.test('ecs: the same facts under Elastic Common Schema names', async (t) => {
  const { dest, lines } = captureLines()
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

t.test('ecs: operational lines have @timestamp and message too', async (t) => {
  const { dest, lines } = captureLines()
  createLoggers('info', dest, 'ecs').ops.info({ code: 'PC_STARTED' }, 'portcullis started')
  const line = lines()[0] ?? {}
  t.match(line, { 'log.level': 'info', code: 'PC_STARTED', message: 'portcullis started' })
  t.ok(Number.isFinite(Date.parse(String(line['@timestamp']))), 'an ISO @timestamp')
  t.notOk('time' in line || 'msg' in line, "not pino's names beside them")
})

t.test(
  'record lines are the bytes pino would write for the same record: level first, then the record in order',
  async (t) => {
    const raw: string[] = []
    const viaPino = pino(
      { level: 'info', formatters: { level: (label: string) => ({ level: label }) }, timestamp: false, base: null },
      { write: (s: string) => void raw.push(s) },
    )
    const quoted = buildDecisionRecord(
      {
        id: '01JDODD',
        agent: 'a"b\\c',
        src: '[::1]:1',
        method: 'GET',
        scheme: 'http',
        host: 'h.test',
        port: 80,
        path: '/caf\u00e9/\u2028x',
        tls: null,
        mode: 'audit',
        address: null,
      },
      { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' },
      false,
    )
    const controls = { ...quoted, id: '01JDCTL', path: '/a\u0001b\nc' }
    const close = buildCloseRecord({ id: 'c', agent: null, host: 'h.test' }, 1, 2, 0, 5)
    const written: string[] = []
    const loggers = createLoggers('info', { write: (s: string) => void written.push(s) }, 'json')
    const sink = createLogSink(loggers.records, 'json')
    for (const r of [record, quoted, controls, close]) sink.write(r)
    viaPino.warn(record)
    for (const r of [quoted, controls, close]) viaPino.info(r)
    t.same(
      written.map((l) => Buffer.from(l, 'utf8')),
      raw.map((l) => Buffer.from(l, 'utf8')),
      'identical UTF-8 bytes, line for line',
    )
  },
)

t.test('a lone surrogate is escaped, so the line stays valid JSON and loses nothing', async (t) => {
  const written: string[] = []
  const sink = createLogSink(
    createLoggers('info', { write: (s: string) => void written.push(s) }, 'json').records,
    'json',
  )
  sink.write(
    buildDecisionRecord(
      { ...record, path: '/x\ud800y' },
      { verdict: 'allow', reason: 'allowed', ruleId: 'g.allow[0]' },
      false,
    ),
  )
  t.match(written[0], /"path":"\/x\\ud800y"/)
  t.equal((JSON.parse(written[0] ?? '') as { path: string }).path, '/x\ud800y')
})

t.test('record lines below the log level are dropped; denials stay at level warn', async (t) => {
  const { dest, lines } = captureLines()
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

t.test(
  'buffered destination: lines are written in order, in batches, and flushSync writes what is pending',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pc-log-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'out.log')
    // An open descriptor, as stdout is: ready at once.
    const d = bufferedDestination(openSync(file, 'a'))
    const line = (i: number): string => `${JSON.stringify({ i, pad: 'é'.repeat(60) })}\n`
    const expect = (n: number): string => Array.from({ length: n }, (_, i) => line(i)).join('')
    // Below one batch nothing is written yet; flushSync writes it, synchronously.
    for (let i = 0; i < 20; i++) d.write(line(i))
    t.equal(readFileSync(file, 'utf8'), '', 'a partial batch waits')
    d.flushSync()
    t.equal(readFileSync(file, 'utf8'), expect(20))
    // Many batches go out asynchronously, in order.
    for (let i = 20; i < 600; i++) d.write(line(i))
    t.ok(
      await until(() => readFileSync(file, 'utf8').length >= expect(600).length - 8 * 1024, 3000),
      'full batches are written without a flush',
    )
    d.flushSync()
    t.ok(await until(() => readFileSync(file, 'utf8') === expect(600), 3000), 'every line once, in order')
  },
)

t.test('buffered destination: a line longer than a batch goes whole, between its neighbours', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'out.log')
  const d = bufferedDestination(openSync(file, 'a'))
  const lines = [
    'a\n',
    `${'é'.repeat(100_000)}\n`,
    'b\n',
    '',
    `${'x'.repeat(65_530)}\n`,
    `${'y'.repeat(300_000)}\n`,
    'c\n',
  ]
  for (const l of lines) d.write(l)
  // No flushSync: it writes what waits synchronously, which may land before a batch still being
  // written asynchronously (sonic-boom's flushSync skips the write in flight); the flush tick keeps order.
  t.ok(await until(() => readFileSync(file, 'utf8') === lines.join(''), 3000), 'every line whole, in order')
  d.write('d\n')
  t.ok(
    await until(() => readFileSync(file, 'utf8') === `${lines.join('')}d\n`, 1000),
    'a lone line is written without a flush, within the flush interval',
  )
})

t.test('lines still pending when the process exits are written first (stdout a pipe)', async (t) => {
  // A child logs through the default destination (stdout) and exits at once, without closing anything.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { createLoggers, createLogSink } = await import(${JSON.stringify(new URL('../../../src/telemetry/log-sink.ts', import.meta.url).href)})
       const sink = createLogSink(createLoggers('info', undefined, 'json').records, 'json')
       for (let i = 0; i < 300; i++) sink.write({ time: 't', id: String(i), event: 'close', agent: null, host: 'h', bytes_up: i, bytes_down: 0, duration_ms: 0 })
       process.exit(0)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  const [code] = (await once(child, 'close')) as [number]
  t.equal(code, 0)
  const ids = out
    .split('\n')
    .filter(Boolean)
    .map((l) => Number((JSON.parse(l) as { id: string }).id))
  // Each line once; a batch sonic-boom was already writing asynchronously may land after the rest.
  t.same(
    [...ids].sort((a, b) => a - b),
    Array.from({ length: 300 }, (_, i) => i),
    'all 300 lines, each once',
  )
})

t.test('processes sharing one stdout pipe (workers) never cut into each other’s lines', async (t) => {
  // Two writers on one pipe, as the workers of `workers: 2` on the primary's stdout; each writes
  // batches as fast as it can, and all of it must come out as whole lines.
  const dir = mkdtempSync(join(tmpdir(), 'pc-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const writer = join(dir, 'writer.mjs')
  writeFileSync(
    writer,
    `const { createLoggers, createLogSink } = await import(${JSON.stringify(new URL('../../../src/telemetry/log-sink.ts', import.meta.url).href)})
     const sink = createLogSink(createLoggers('info', undefined, 'json').records, 'json')
     const pad = 'p'.repeat(200)
     for (let i = 0; i < 20000; i++) {
       sink.write({ time: 't', id: process.argv[2] + i, event: 'close', agent: pad, host: 'h', bytes_up: i, bytes_down: 0, duration_ms: 0 })
       if (i % 500 === 0) await new Promise((r) => setImmediate(r))
     }\n`,
  )
  const node = (name: string): string => `"${process.execPath}" --import tsx "${writer}" ${name}`
  const child = spawn('sh', ['-c', `${node('a')} & A=$!; ${node('b')} & B=$!; wait $A && wait $B`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  const [code] = (await once(child, 'close')) as [number]
  t.equal(code, 0, 'both writers exit 0')
  const lines = out.split('\n').filter(Boolean)
  const broken = lines.filter((l) => {
    try {
      JSON.parse(l)
      return false
    } catch {
      return true
    }
  })
  t.equal(broken.length, 0, `every line whole (${broken[0]?.slice(0, 120) ?? ''})`)
  t.equal(lines.length, 40000, 'all 40,000 lines')
})
