import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { CLOSED_PORT } from '../helpers/ports.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/poll.js'
import { capturedLog } from '../helpers/log.js'
import { createLimiter, type Limiter } from '../../src/limits/limiter.js'
import { attachRedisSync, type RedisSync } from '../../src/limits/redis-sync.js'
import type { AgentLimits } from '../../src/policy/types.js'

// Fail fast and reconnect quickly: the sync must never queue commands while Redis is down.
const client = (t: Test, url: string): Redis =>
  redisClient(t, url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 })

interface Instance {
  readonly limiter: Limiter
  readonly sync: RedisSync
  readonly codes: (code: string) => number
}

// The clock is frozen mid-minute: no refill and no window roll during the test, so the counts are exact.
const NOW = Math.floor(Date.now() / 60_000) * 60_000 + 30_000
const MINUTE = Math.floor(NOW / 60_000)
const RPM60: AgentLimits = { requestsPerMinute: 60, concurrentConnections: null, bytesPerDay: null }

function instance(t: Test, url: string): Instance {
  const limiter = createLimiter({ now: () => NOW })
  const { log, codes } = capturedLog()
  const sync = attachRedisSync(limiter, client(t, url), { prefix: 'pc-test:', syncIntervalMs: 20, log })
  t.teardown(() => sync.stop(100))
  return { limiter, sync, codes }
}

/** Admit alternately on both instances at a steady pace (as traffic would arrive); bounded rounds. */
async function alternate(a: Instance, b: Instance, agent: string, rounds: number): Promise<[number, number]> {
  let na = 0
  let nb = 0
  for (let i = 0; i < rounds; i++) {
    if ('ok' in a.limiter.admitRequest(agent, RPM60)) na++
    if ('ok' in b.limiter.admitRequest(agent, RPM60)) nb++
    await delay(10)
  }
  return [na, nb]
}

t.test(
  'two instances share one budget through Redis, fall back to local limits when it dies, and recover',
  async (t) => {
    const redis = await startRedis(t)
    const check = client(t, redis.url)
    const a = instance(t, redis.url)
    const b = instance(t, redis.url)
    await waitFor('both shared', () => !a.sync.fallback() && !b.sync.fallback())
    // -1 while the checker itself is still reconnecting after a restart.
    const count = async (agent: string): Promise<number> =>
      Number((await check.get(`pc-test:rl:{${agent}}:${MINUTE}`).catch(() => -1)) ?? 0)

    // 1. shared: together about one budget, not two
    const [na, nb] = await alternate(a, b, 'ci-42', 100)
    t.ok(na > 0 && nb > 0, `both instances admitted (${na} + ${nb})`)
    t.ok(
      na + nb >= 60 && na + nb <= 66,
      `together they admitted ${na + nb}: one budget of 60 plus at most one sync interval of slop`,
    )
    await waitFor('counts synced', async () => (await count('ci-42')) === na + nb)
    t.ok((await check.ttl(`pc-test:rl:{ci-42}:${MINUTE}`)) > 0, 'the window counter expires')

    // 2. Redis dies: both fall back to local limits and keep admitting synchronously
    await redis.kill()
    await waitFor('both fell back', () => a.sync.fallback() && b.sync.fallback())
    const t0 = process.hrtime.bigint()
    let la = 0
    let lb = 0
    for (let i = 0; i < 1000; i++) {
      if ('ok' in a.limiter.admitRequest('ci-43', RPM60)) la++
      if ('ok' in b.limiter.admitRequest('ci-43', RPM60)) lb++
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    t.ok(ms < 200, `2000 admits while Redis is down took ${ms.toFixed(1)} ms`)
    t.equal(la, 60, 'instance A: its own local budget')
    t.equal(lb, 60, 'instance B: its own local budget')
    t.equal(a.codes('PC_LIMITS_LOCAL_FALLBACK'), 1)
    t.equal(b.codes('PC_LIMITS_LOCAL_FALLBACK'), 1)

    // 3. Redis is back: sharing resumes, and what was admitted during the outage is counted
    await redis.start()
    await waitFor('both shared again', () => !a.sync.fallback() && !b.sync.fallback(), 15_000)
    await waitFor('outage counts synced', async () => (await count('ci-43')) === 120)
    t.equal(a.codes('PC_LIMITS_SHARED'), 2, 'shared at start and after recovery')
    t.equal(b.codes('PC_LIMITS_SHARED'), 2)
    const [ra, rb] = await alternate(a, b, 'ci-44', 100)
    t.ok(ra + rb >= 60 && ra + rb <= 66, `after recovery they admitted ${ra + rb} together`)
    t.equal(a.codes('PC_LIMITS_LOCAL_FALLBACK'), 1, 'one warning per outage')
  },
)

t.test('bytes per day are shared too', async (t) => {
  const redis = await startRedis(t)
  const a = instance(t, redis.url)
  const b = instance(t, redis.url)
  await waitFor('both shared', () => !a.sync.fallback() && !b.sync.fallback())
  const lim: AgentLimits = { requestsPerMinute: null, concurrentConnections: null, bytesPerDay: 1000 }
  t.same(b.limiter.admitRequest('ci-42', lim), { ok: true })
  a.limiter.addBytes('ci-42', 1000)
  await waitFor('B sees the bytes A moved', () => 'verdict' in b.limiter.admitRequest('ci-42', lim))
  t.match(b.limiter.admitRequest('ci-42', lim), {
    verdict: 'deny',
    reason: 'denied_rate_limited',
    detail: 'bytes_per_day',
  })
})

t.test('with Redis never reachable the limiter stays local and warns once', async (t) => {
  const a = instance(t, `redis://127.0.0.1:${CLOSED_PORT}`)
  await waitFor('fell back', () => a.codes('PC_LIMITS_LOCAL_FALLBACK') === 1)
  t.equal(a.sync.fallback(), true)
  let n = 0
  for (let i = 0; i < 100; i++) if ('ok' in a.limiter.admitRequest('ci-42', RPM60)) n++
  t.equal(n, 60)
  await a.sync.stop()
  await a.sync.stop()
  t.equal(a.sync.fallback(), true)
})

t.test('a stopping instance gives its held tokens back', async (t) => {
  const redis = await startRedis(t)
  const a = instance(t, redis.url)
  await waitFor('shared', () => !a.sync.fallback())
  t.ok('ok' in a.limiter.admitRequest('give-back', RPM60))
  const checker = client(t, redis.url)
  await waitFor('checker connected', () => checker.status === 'ready')
  const used = async (): Promise<number> => Number((await checker.get(`pc-test:rl:{give-back}:${MINUTE}`)) ?? 0)
  await waitFor('tokens held beyond the one used', async () => (await used()) > 1)
  await a.sync.stop()
  t.equal(await used(), 1, 'only the request admitted stays counted')
})
