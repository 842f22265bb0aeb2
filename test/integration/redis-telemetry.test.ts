import { Cluster, Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { CLOSED_PORT, freePort } from '../helpers/ports.js'
import { redisClient, redisServer, startRedis, startRedisCluster } from '../helpers/redis.js'
import { waitFor } from '../helpers/poll.js'
import { capturedLog } from '../helpers/log.js'
import {
  buildCloseRecord,
  buildDecisionRecord,
  newRequestId,
  type DecisionFacts,
  type TelemetryRecord,
} from '../../src/telemetry/events.js'
import { COMMAND_TIMEOUT_MS, createRedisClient } from '../../src/redis/client.js'
import { redactRedisUrl } from '../../src/redis/url.js'
import { readEvents } from '../../src/telemetry/redis-events.js'
import { createRedisSink, type RedisSink } from '../../src/telemetry/redis-sink.js'
import type { Decision } from '../../src/policy/types.js'

function sinkFor(t: Test, opts: Parameters<typeof createRedisSink>[0]): RedisSink {
  const sink = createRedisSink(opts)
  t.teardown(() => sink.close())
  return sink
}

const allow: Decision = { verdict: 'allow', reason: 'allowed', ruleId: 'builders.allow[0]' }
const denyPath: Decision = { verdict: 'deny', reason: 'denied_path', ruleId: 'builders.allow[2]' }
function decision(agent: string, host: string, d: Decision = allow, now = new Date()): TelemetryRecord {
  const f: DecisionFacts = {
    id: newRequestId(),
    agent,
    src: '127.0.0.1:5000',
    method: 'GET',
    scheme: 'https',
    host,
    port: 443,
    path: '/x',
    tls: 'intercept',
    mode: 'enforce',
    address: '127.0.0.1',
  }
  return buildDecisionRecord(f, d, false, now)
}

async function streamIds(c: Redis, stream: string): Promise<string[]> {
  const entries = await c.xrange(stream, '-', '+')
  return entries.map(([, f]) => (JSON.parse(f[f.indexOf('r') + 1] ?? 'null') as TelemetryRecord).id)
}

// --- tests -------------------------------------------------------------------------------------------------

t.test('records arrive in the stream in batches, with flat fields, trimmed by MAXLEN ~', async (t) => {
  const redis = await startRedis(t)
  const { log } = capturedLog()
  const sink = sinkFor(t, { url: redis.url, stream: 'pc:events', maxlen: 100, log })
  await waitFor('connected', () => sink.connected())
  const written: TelemetryRecord[] = []
  for (let i = 0; i < 1000; i++) written.push(decision('ci-42', 'example.com', i % 2 ? denyPath : allow))
  written.push(buildCloseRecord({ id: 'close-1', agent: 'ci-42', host: 'example.com' }, 10, 20, 0, 5))
  for (const r of written) sink.write(r)
  await waitFor('backlog drained', () => sink.backlog() === 0)
  const c = redisClient(t, redis.url)
  const len = await c.xlen('pc:events')
  t.ok(len >= 100 && len < 1001, `MAXLEN ~ trimmed the stream to about 100 (got ${len})`)
  const tail = await c.xrevrange('pc:events', '+', '-', 'COUNT', 2)
  t.same(tail[0]?.[1], ['r', JSON.stringify(written[1000]), 'event', 'close', 'id', 'close-1', 'agent', 'ci-42'])
  const last = written[999] as TelemetryRecord & { event: 'decision' }
  t.same(tail[1]?.[1], [
    'r',
    JSON.stringify(last),
    'event',
    'decision',
    'id',
    last.id,
    'agent',
    'ci-42',
    'decision',
    last.decision,
    'reason',
    last.reason,
  ])
  t.equal(sink.dropped(), 0)
})

t.test('records written while Redis is down arrive after it restarts; write() stays synchronous', async (t) => {
  const redis = await startRedis(t)
  const logs = capturedLog()
  const sink = sinkFor(t, { url: redis.url, stream: 'pc:events', maxlen: 100_000, log: logs.log, batchMax: 50 })
  await waitFor('connected', () => sink.connected())
  for (let i = 0; i < 200; i++) sink.write(decision('ci-42', 'before.example.com'))
  await redis.kill() // while the first batches may still be in flight
  const during: TelemetryRecord[] = []
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < 2000; i++) {
    const r = decision('ci-42', 'during.example.com')
    during.push(r)
    sink.write(r)
  }
  const writeMs = Number(process.hrtime.bigint() - t0) / 1e6
  t.ok(writeMs < 500, `2000 writes while down took ${writeMs.toFixed(1)} ms`)
  await waitFor('down noticed', () => !sink.connected() && logs.codes('PC_REDIS_DOWN') === 1)
  t.ok(sink.backlog() >= 2000, 'the outage records wait in the buffer')
  await redis.start()
  await waitFor('backlog drained after restart', () => sink.backlog() === 0, 15_000)
  const ids = new Set(await streamIds(redisClient(t, redis.url), 'pc:events'))
  t.equal(during.filter((r) => !ids.has(r.id)).length, 0, 'every record written during the outage arrived')
  t.equal(sink.dropped(), 0)
  t.equal(logs.codes('PC_REDIS_DOWN'), 1, 'one down line per outage')
  t.equal(logs.codes('PC_REDIS_UP'), 2, 'up at start and on recovery')
  t.equal(logs.codes('PC_TELEMETRY_DROPPING'), 0)
})

t.test('flapping Redis: every outage is buffered, resent, and logged once down and once up', async (t) => {
  const redis = await startRedis(t)
  const logs = capturedLog()
  const sink = sinkFor(t, { url: redis.url, stream: 'pc:events', maxlen: 100_000, log: logs.log, batchMax: 20 })
  await waitFor('connected', () => sink.connected())
  for (let flap = 1; flap <= 3; flap++) {
    for (let i = 0; i < 50; i++) sink.write(decision('ci-42', 'before.example.com'))
    await redis.kill()
    const during = Array.from({ length: 100 }, () => decision('ci-42', 'during.example.com'))
    for (const r of during) sink.write(r)
    await waitFor(`down #${flap}`, () => logs.codes('PC_REDIS_DOWN') === flap)
    await redis.start()
    await waitFor(`drained #${flap}`, () => sink.connected() && sink.backlog() === 0, 15_000)
    const ids = new Set(await streamIds(redisClient(t, redis.url), 'pc:events'))
    t.equal(during.filter((r) => !ids.has(r.id)).length, 0, `outage #${flap}: every buffered record arrived`)
  }
  t.equal(logs.codes('PC_REDIS_UP'), 4)
  t.equal(sink.dropped(), 0)
})

t.test('a full buffer drops the oldest records, counts them and warns once per outage', async (t) => {
  const redis = redisServer(t, await freePort())
  const logs = capturedLog()
  let onDrop = 0
  const sink = sinkFor(t, {
    url: redis.url,
    stream: 'pc:events',
    maxlen: 1000,
    log: logs.log,
    bufferMax: 10,
    onDrop: (n) => (onDrop += n),
  })
  const first: TelemetryRecord[] = []
  for (let i = 0; i < 25; i++) {
    const r = decision('ci-42', 'example.com')
    first.push(r)
    sink.write(r)
  }
  t.equal(sink.backlog(), 10)
  t.equal(sink.dropped(), 15)
  t.equal(onDrop, 15)
  t.equal(logs.codes('PC_TELEMETRY_DROPPING'), 1)
  await redis.start()
  await waitFor('backlog drained', () => sink.backlog() === 0)
  await waitFor('the episode closed', () => logs.codes('PC_TELEMETRY_DROPPED') === 1)
  t.match(
    logs.lines.find((l) => l.code === 'PC_TELEMETRY_DROPPED'),
    { dropped: 15 },
    'once drained, one line says how many were dropped',
  )
  t.equal(logs.codes('PC_TELEMETRY_DROPPING'), 1, 'and the reconnection did not warn again')
  const c = redisClient(t, redis.url)
  t.same(
    await streamIds(c, 'pc:events'),
    first.slice(15).map((r) => r.id),
    'the 10 newest arrived, in order',
  )
  await redis.kill()
  await waitFor('down noticed', () => !sink.connected())
  for (let i = 0; i < 12; i++) sink.write(decision('ci-42', 'example.com'))
  t.equal(sink.dropped(), 17)
  t.equal(logs.codes('PC_TELEMETRY_DROPPING'), 2, 'a second outage warns once more')
  t.equal(logs.codes('PC_REDIS_DOWN'), 2)
})

t.test('the URL password never reaches a log line', async (t) => {
  const port = CLOSED_PORT
  const logs = capturedLog()
  const sink = sinkFor(t, {
    url: `redis://user:s3kr1t-pass@127.0.0.1:${port}/0`,
    stream: 's',
    maxlen: 10,
    log: logs.log,
    bufferMax: 1,
  })
  sink.write(decision('ci-42', 'example.com'))
  sink.write(decision('ci-42', 'example.com'))
  await waitFor('down logged', () => logs.codes('PC_REDIS_DOWN') === 1)
  t.notMatch(JSON.stringify(logs.lines), /s3kr1t/)
  t.match(JSON.stringify(logs.lines), /user:\*\*\*@127\.0\.0\.1/)
  t.equal(redactRedisUrl('rediss+cluster://:p%40ss@h1:1,h2:2'), 'rediss+cluster://:***@h1:1,h2:2')
  t.equal(redactRedisUrl('redis://h:6379'), 'redis://h:6379')
})

t.test('a database index the server does not have keeps Redis down, not writing to database 0', async (t) => {
  const redis = await startRedis(t)
  const logs = capturedLog()
  const sink = sinkFor(t, { url: `${redis.url}/99`, stream: 'wrong-db', maxlen: 10, log: logs.log })
  sink.write(decision('ci-42', 'example.com'))
  await waitFor('down logged', () => logs.codes('PC_REDIS_DOWN') >= 1)
  await new Promise((r) => setTimeout(r, 500))
  t.match(JSON.stringify(logs.lines), /DB index is out of range/, 'the down line says why')
  t.equal(logs.codes('PC_REDIS_UP'), 0, 'never up')
  t.notOk(sink.connected())
  t.equal(await redisClient(t, redis.url).xlen('wrong-db'), 0, 'nothing written to database 0')
})

t.test('readEvents filters newest first and pages with a stream-id cursor', async (t) => {
  const redis = await startRedis(t)
  const sink = sinkFor(t, { url: redis.url, stream: 'ev', maxlen: 100_000, log: capturedLog().log })
  const base = Date.now() - 60_000
  const rs: TelemetryRecord[] = []
  for (let i = 0; i < 20; i++) {
    const agent = i % 2 ? 'ci-42' : 'ci-7'
    const host = i % 3 ? 'api.example.com' : 'example.com'
    rs.push(decision(agent, host, i % 4 ? allow : denyPath, new Date(base + i * 1000)))
  }
  rs.push(buildCloseRecord({ id: 'c1', agent: 'ci-42', host: 'a.b.example.com' }, 1, 2, base, base + 30_000))
  for (const r of rs) sink.write(r)
  await waitFor('connected', () => sink.connected())
  await sink.flush()
  t.equal(sink.backlog(), 0)
  const ids = (list: TelemetryRecord[]): string[] => list.map((r) => r.id)
  const newestFirst = (pred: (r: TelemetryRecord, i: number) => boolean): string[] => ids(rs.filter(pred).reverse())

  const denies = await readEvents(sink.client, 'ev', { decision: 'deny', limit: 100 })
  t.same(
    ids(denies.records),
    newestFirst((_r, i) => i < 20 && i % 4 === 0),
  )
  t.equal(denies.nextCursor, null)
  const byAgent = await readEvents(sink.client, 'ev', { agent: 'ci-42', reason: 'allowed', limit: 100 })
  t.same(
    ids(byAgent.records),
    newestFirst((_r, i) => i < 20 && i % 2 === 1 && i % 4 !== 0),
  )
  const sub = await readEvents(sink.client, 'ev', { host: '*.example.com', limit: 100 })
  t.same(
    ids(sub.records),
    newestFirst((r) => r.host !== 'example.com'),
    'subdomains, not the apex; close records too',
  )
  const window = await readEvents(sink.client, 'ev', {
    since: new Date(base + 5000),
    until: new Date(base + 8000),
    limit: 100,
  })
  t.same(
    ids(window.records),
    newestFirst((_r, i) => i >= 5 && i < 8),
    'since inclusive, until exclusive',
  )

  const all: string[] = []
  let cursor: string | undefined
  for (let page = 0; page < 20; page++) {
    const p = await readEvents(sink.client, 'ev', { limit: 4, ...(cursor ? { cursor } : {}) })
    all.push(...ids(p.records))
    if (p.nextCursor === null) break
    t.match(p.nextCursor, /^\d+-\d+$/)
    cursor = p.nextCursor
  }
  t.same(all, ids([...rs].reverse()), 'pages concatenate to the whole stream, newest first, without repeats')
  await t.rejects(readEvents(sink.client, 'ev', { limit: 1, cursor: '01JD0000000000000000000000' }), /stream id/)
  t.same(
    await readEvents(sink.client, 'ev', { limit: 1, cursor: '0-0' }),
    { records: [], nextCursor: null },
    'nothing before the first id: an empty last page, not a Redis error',
  )
  const top = await readEvents(sink.client, 'ev', { limit: 1, cursor: '18446744073709551615-18446744073709551615' })
  t.equal(top.records.length, 1, 'the largest id pages from the newest')
})

t.test('readEvents scans across several XREVRANGE pages for a sparse filter', async (t) => {
  const redis = await startRedis(t)
  const sink = sinkFor(t, { url: redis.url, stream: 'ev', maxlen: 100_000, log: capturedLog().log })
  const rare = [decision('rare', 'example.com'), decision('rare', 'example.com')]
  for (const r of rare) sink.write(r)
  for (let i = 0; i < 1200; i++) sink.write(decision('ci-42', 'example.com'))
  await waitFor('drained', () => sink.connected() && sink.backlog() === 0)
  const p = await readEvents(sink.client, 'ev', { agent: 'rare', limit: 10 })
  t.same(
    p.records.map((r) => r.id),
    rare.map((r) => r.id).reverse(),
  )
  t.equal(p.nextCursor, null)
})

t.test('a redis+cluster:// URL talks to a (one-node) Redis Cluster', async (t) => {
  const { redis, client: admin } = await startRedisCluster(t)
  const logs = capturedLog()
  const sink = sinkFor(t, {
    url: `redis+cluster://127.0.0.1:${redis.port}`,
    stream: '{pc}:events',
    maxlen: 1000,
    log: logs.log,
  })
  t.ok(sink.client instanceof Cluster)
  const rs = [decision('ci-42', 'example.com'), decision('ci-42', 'example.com')]
  for (const r of rs) sink.write(r)
  await waitFor('drained', () => sink.connected() && sink.backlog() === 0)
  t.same(
    await streamIds(admin, '{pc}:events'),
    rs.map((r) => r.id),
  )
  const page = await readEvents(sink.client, '{pc}:events', { limit: 10 })
  t.equal(page.records.length, 2)
  const other = createRedisClient(`redis://127.0.0.1:${redis.port}`, true)
  t.ok(other instanceof Cluster, 'cluster: true turns a redis:// URL into a seed node')
  other.disconnect()
})

t.test('a write Redis refuses (WRONGTYPE) is retried, then lands once, without duplicates', async (t) => {
  const redis = await startRedis(t)
  const c = redisClient(t, redis.url)
  await c.set('pc:wrong', 'not a stream')
  const logs = capturedLog()
  const sink = sinkFor(t, { url: redis.url, stream: 'pc:wrong', maxlen: 1000, log: logs.log, retryMs: 100 })
  await waitFor('connected', () => sink.connected())
  const written = Array.from({ length: 5 }, () => decision('ci-42', 'example.com'))
  for (const r of written) sink.write(r)
  await waitFor('refusal logged', () => logs.codes('PC_REDIS_WRITE_FAILED') === 1)
  t.equal(sink.backlog(), 5, 'nothing was lost or half-sent')
  await c.del('pc:wrong')
  await waitFor('backlog drained', () => sink.backlog() === 0)
  t.same(
    await streamIds(c, 'pc:wrong'),
    written.map((r) => r.id),
    'each record exactly once, in order',
  )
})

t.test('a Redis that hangs (SIGSTOP) leaves no duplicate, however long it hangs', async (t) => {
  const redis = await startRedis(t)
  const logs = capturedLog()
  const sink = sinkFor(t, { url: redis.url, stream: 'pc:hung', maxlen: 1000, log: logs.log })
  await waitFor('connected', () => sink.connected())
  redis.pause()
  const pausedAt = Date.now()
  const r = decision('ci-42', 'hung.example.com')
  sink.write(r)
  await waitFor('the timeout is noticed as Redis down, with why', () => logs.codes('PC_REDIS_DOWN') === 1, 10_000)
  // Resending on the silent connection used to queue one copy per command timeout (3 s); let several pass.
  await waitFor('three command timeouts have passed', () => Date.now() - pausedAt > 3 * COMMAND_TIMEOUT_MS, 15_000)
  redis.resume()
  await waitFor('delivered after it wakes', () => sink.backlog() === 0 && sink.connected(), 15_000)
  const copies = (await streamIds(redisClient(t, redis.url), 'pc:hung')).filter((id) => id === r.id).length
  t.equal(copies, 1, 'the record is in the stream once')
})
