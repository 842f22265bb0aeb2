import t from 'tap'
import { createMetrics } from '../../../src/telemetry/metrics.js'
import { buildCloseRecord, buildDecisionRecord, type DecisionFacts } from '../../../src/telemetry/events.js'
import type { Decision } from '../../../src/policy/types.js'

const facts = (agent: string | null, id = '01JD0000000000000000000000'): DecisionFacts => ({
  id,
  agent,
  src: '127.0.0.1:5000',
  method: 'CONNECT',
  scheme: 'https',
  host: 'example.com',
  port: 443,
  path: null,
  tls: 'tunnel',
  mode: 'enforce',
  address: '93.184.216.34',
})
const allow: Decision = { verdict: 'allow', reason: 'allowed', ruleId: 'builders.allow[0]' }
const denyPath: Decision = { verdict: 'deny', reason: 'denied_path', ruleId: 'builders.allow[2]' }
const denyAuth: Decision = { verdict: 'deny', reason: 'denied_auth_invalid', ruleId: null }

/** The value of one sample line, e.g. `portcullis_requests_total{decision="allow",...}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

t.test('decision records count by decision, reason and agent', async (t) => {
  const m = createMetrics({ knownAgent: (id) => id === 'ci-42' })
  m.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  m.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  m.sink.write(buildDecisionRecord(facts('ci-42'), denyPath, false))
  const text = await m.text()
  t.equal(sample(text, 'portcullis_requests_total{decision="allow",reason="allowed",agent="ci-42"}'), 2)
  t.equal(sample(text, 'portcullis_requests_total{decision="deny",reason="denied_path",agent="ci-42"}'), 1)
  t.match(m.contentType, /^text\/plain/)
})

t.test('a claimed agent id that is not configured never becomes a label value', async (t) => {
  const m = createMetrics({ knownAgent: (id) => id === 'ci-42' })
  m.sink.write(buildDecisionRecord(facts('attacker-chosen-<script>'), denyAuth, false))
  m.sink.write(
    buildDecisionRecord(facts(null), { verdict: 'deny', reason: 'denied_auth_required', ruleId: null }, false),
  )
  const text = await m.text()
  t.notMatch(text, /attacker-chosen/)
  t.equal(sample(text, 'portcullis_requests_total{decision="deny",reason="denied_auth_invalid",agent=""}'), 1)
  t.equal(sample(text, 'portcullis_requests_total{decision="deny",reason="denied_auth_required",agent=""}'), 1)
})

t.test('without a knownAgent predicate, distinct agent labels are capped', async (t) => {
  const m = createMetrics()
  for (let i = 0; i < 1005; i++) m.sink.write(buildDecisionRecord(facts(`a${i}`), allow, false))
  const text = await m.text()
  t.equal(sample(text, 'portcullis_requests_total{decision="allow",reason="allowed",agent="a999"}'), 1)
  t.equal(sample(text, 'portcullis_requests_total{decision="allow",reason="allowed",agent=""}'), 5)
})

t.test('close records add bytes up and down per agent', async (t) => {
  const m = createMetrics()
  m.sink.write(buildCloseRecord({ id: 'x', agent: 'ci-42', host: 'example.com' }, 812, 45120, 0, 381))
  m.sink.write(buildCloseRecord({ id: 'y', agent: 'ci-42', host: 'example.com' }, 188, 0, 0, 10))
  const text = await m.text()
  t.equal(sample(text, 'portcullis_bytes_total{direction="up",agent="ci-42"}'), 1000)
  t.equal(sample(text, 'portcullis_bytes_total{direction="down",agent="ci-42"}'), 45120)
})

t.test('each scrape shows the running totals: no double counting, nothing lost between scrapes', async (t) => {
  const m = createMetrics()
  const series = 'portcullis_requests_total{decision="allow",reason="allowed",agent="ci-42"}'
  m.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  t.equal(sample(await m.text(), series), 1)
  t.equal(sample(await m.text(), series), 1, 'a second scrape with nothing new adds nothing')
  m.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  m.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  m.sink.write(buildCloseRecord({ id: 'x', agent: 'ci-42', host: 'example.com' }, 5, 7, 0, 1))
  const text = await m.text()
  t.equal(sample(text, series), 3)
  t.equal(sample(text, 'portcullis_bytes_total{direction="down",agent="ci-42"}'), 7)
  m.sink.write(buildCloseRecord({ id: 'y', agent: 'ci-42', host: 'example.com' }, 0, 3, 0, 1))
  t.equal(sample(await m.text(), 'portcullis_bytes_total{direction="down",agent="ci-42"}'), 10)
})

t.test('decision latency histogram observes seconds', async (t) => {
  const m = createMetrics()
  m.observeDecisionSeconds(0.0002)
  m.observeDecisionSeconds(0.003)
  m.observeDecisionSeconds(Number.NaN)
  const text = await m.text()
  t.equal(sample(text, 'portcullis_decision_duration_seconds_count'), 2)
  t.equal(sample(text, 'portcullis_decision_duration_seconds_bucket{le="0.00025"}'), 1)
  t.equal(sample(text, 'portcullis_decision_duration_seconds_bucket{le="+Inf"}'), 2)
})

t.test('gauges read their callbacks at scrape time, including ones set later', async (t) => {
  let tunnels = 3
  const m = createMetrics({ activeTunnels: () => tunnels, configGeneration: () => 7 })
  t.equal(sample(await m.text(), 'portcullis_active_tunnels'), 3)
  tunnels = 1
  m.setSources({ telemetryBacklog: () => 42, limitsRedisFallback: () => true })
  const text = await m.text()
  t.equal(sample(text, 'portcullis_active_tunnels'), 1)
  t.equal(sample(text, 'portcullis_config_generation'), 7)
  t.equal(sample(text, 'portcullis_telemetry_backlog'), 42)
  t.equal(sample(text, 'portcullis_limits_redis_fallback'), 1)
})

t.test('telemetry drops and sink failures keep counter semantics', async (t) => {
  let dropped = 5
  const failures = new Map([['redis', 2]])
  const m = createMetrics({ telemetryDropped: () => dropped, sinkFailures: () => failures })
  t.equal(sample(await m.text(), 'portcullis_telemetry_dropped_total'), 5)
  dropped = 9
  failures.set('redis', 3)
  m.countStreamDropped(4)
  const text = await m.text()
  t.equal(sample(text, 'portcullis_telemetry_dropped_total'), 9)
  t.equal(sample(text, 'portcullis_telemetry_sink_failures_total{sink="redis"}'), 3)
  t.equal(sample(text, 'portcullis_admin_stream_dropped_total'), 4)
})

t.test('two instances in one process keep separate registries, with process metrics', async (t) => {
  const a = createMetrics()
  const b = createMetrics()
  a.sink.write(buildDecisionRecord(facts('ci-42'), allow, false))
  const [ta, tb] = await Promise.all([a.text(), b.text()])
  t.equal(sample(ta, 'portcullis_requests_total{decision="allow",reason="allowed",agent="ci-42"}'), 1)
  t.equal(sample(tb, 'portcullis_requests_total{decision="allow",reason="allowed",agent="ci-42"}'), undefined)
  t.match(tb, /process_cpu_user_seconds_total/)
  t.match(tb, /portcullis_telemetry_dropped_total 0/)
})
