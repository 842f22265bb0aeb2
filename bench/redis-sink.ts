/**
 * Redis telemetry sink throughput: how fast write() enqueues (the data path's
 * cost) and how fast records reach the stream (pipelined XADD … MAXLEN ~).
 * Bounded (200k records by default), loopback only; starts its own
 * redis-server on a free port unless BENCH_REDIS_URL is set.
 *
 *   node --import tsx bench/redis-sink.ts [records]
 */
import { pino } from 'pino'
import { buildDecisionRecord, newRequestId, type TelemetryRecord } from '../src/telemetry/events.js'
import { createRedisSink } from '../src/telemetry/redis-sink.js'
import { startRedis } from './lib.js'

const N = Math.min(Number(process.argv[2] ?? 200_000) || 200_000, 2_000_000)

const redis = process.env.BENCH_REDIS_URL
  ? { url: process.env.BENCH_REDIS_URL, stop: () => undefined }
  : await startRedis()
const sink = createRedisSink({
  url: redis.url,
  stream: 'portcullis:bench',
  maxlen: 1_000_000,
  bufferMax: N + 1,
  batchMax: Number(process.env.BENCH_BATCH ?? 500),
  log: pino({ level: 'warn' }),
})
const deadline = Date.now() + 10_000
while (!sink.connected() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
if (!sink.connected()) throw new Error('Redis did not come up')

const records: TelemetryRecord[] = []
for (let i = 0; i < N; i++) {
  const f = {
    id: newRequestId(),
    agent: `ci-${i % 50}`,
    src: '10.1.2.3:51234',
    method: 'GET',
    scheme: 'https' as const,
    host: 'registry.npmjs.org',
    port: 443,
    path: `/pkg-${i % 1000}`,
    tls: 'intercept' as const,
    mode: 'enforce' as const,
    address: '104.16.0.1',
  }
  records.push(buildDecisionRecord(f, { verdict: 'allow', reason: 'allowed', ruleId: 'builders.allow[0]' }, false))
}

// Enqueue in chunks of 1000 per tick, as a busy proxy would, so the flusher interleaves.
const t0 = process.hrtime.bigint()
let writeNs = 0n
for (let i = 0; i < N; i += 1000) {
  const w0 = process.hrtime.bigint()
  for (let j = i; j < Math.min(N, i + 1000); j++) sink.write(records[j] as TelemetryRecord)
  writeNs += process.hrtime.bigint() - w0
  await new Promise((r) => setImmediate(r))
}
const drainDeadline = Date.now() + 120_000
while (sink.backlog() > 0 && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 5))
const totalS = Number(process.hrtime.bigint() - t0) / 1e9
const writeS = Number(writeNs) / 1e9
console.log(`command: node --import tsx bench/redis-sink.ts ${N}`)
console.log(
  `write():   ${N} records in ${(writeS * 1000).toFixed(1)} ms = ${Math.round(N / writeS).toLocaleString('en')} records/s (${((writeS / N) * 1e9).toFixed(0)} ns/record)`,
)
console.log(
  `delivered: ${N - sink.backlog()} records in ${totalS.toFixed(2)} s = ${Math.round((N - sink.backlog()) / totalS).toLocaleString('en')} records/s to Redis; dropped ${sink.dropped()}`,
)
await sink.client.del('portcullis:bench')
await sink.close()
redis.stop()
