import t from 'tap'
import { adminCall, metric as metricWith } from '../helpers/admin.js'
import { clearOfMinuteEnd, until, waitFor } from '../helpers/poll.js'
import { proxiedGet } from '../helpers/clients.js'
import { originOnlyYaml } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { redisClient, startRedis, startRedisCluster } from '../helpers/redis.js'
import { startInstance } from '../helpers/spawn-portcullis.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/**
 * Two `portcullis start` processes on one Redis (SPEC §7): one rate-limit
 * budget, one approval set, one telemetry stream; and what happens while
 * Redis is down.
 */

const ADMIN_TOKEN = 'redis-shared-admin-token-0123456789'
const RPM = 20

const metric = (adminUrl: string, name: string) => metricWith(adminUrl, name, ADMIN_TOKEN)

t.test('two instances on one Redis', async (t) => {
  const redis = await startRedis(t)
  const origin = await startHttpOrigin(t)
  const body = originOnlyYaml([origin.port], {
    paths: ['/public/**'],
    agents: { ci: '', seq: '', storm: '', sparse: '', restart: '', other: 'limits: { requests_per_minute: 10000 }' },
    extra: `telemetry:
  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:events", maxlen: 100000 }
limits: { requests_per_minute: ${RPM} }`,
  })
  const start = () => startInstance(t, body, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }, { sharedLimits: true })
  const [a, b] = await Promise.all([start(), start()])
  await waitFor(
    'both see two instances',
    async () =>
      (await metric(a.adminUrl, 'portcullis_limits_instances')) === 2 &&
      (await metric(b.adminUrl, 'portcullis_limits_instances')) === 2,
  )
  const checker = redisClient(t, redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 })
  const at = (path: string): string => `http://origin.test:${origin.port}${path}`

  t.test("together they admit the agent's budget, not twice it", async (t) => {
    // A fixed one-minute window is shared: keep the run clear of a minute boundary.
    await clearOfMinuteEnd()

    // A burst at once, half to each instance, for an agent neither has seen yet.
    const burst = await Promise.all(
      Array.from({ length: 2 * RPM }, (_, i) => proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/public/burst-${i}`))),
    )
    const burstAdmitted = burst.filter((r) => r.status === 200).length
    // Tokens are reserved in Redis before they are used: together exactly the budget, give or take
    // rounding (one per instance).
    t.ok(
      burstAdmitted >= RPM - 2 && burstAdmitted <= RPM + 1,
      `parallel burst: admitted ${burstAdmitted} of ${2 * RPM} against a budget of ${RPM} (each instance alone would admit ${RPM})`,
    )
    t.ok(
      burst.every(
        (r) => r.status === 200 || (r.status === 429 && r.headers['x-portcullis-decision'] === 'denied_rate_limited'),
      ),
      'the rest are 429 denied_rate_limited',
    )

    // One request after another, alternating instances, for another agent.
    const statuses: number[] = []
    for (let i = 0; i < 2 * RPM; i++)
      statuses.push((await proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/public/seq-${i}`), 'seq')).status)
    const admitted = statuses.filter((s) => s === 200).length
    t.ok(
      admitted >= RPM - 2 && admitted <= RPM + 1,
      `sequential: admitted ${admitted} of ${2 * RPM} against a budget of ${RPM}: ${statuses.join(' ')}`,
    )
    // Waves of bursts at both instances at once, spread over several sync intervals.
    let stormAdmitted = 0
    for (let wave = 0; wave < 5; wave++) {
      const answers = await Promise.all(
        Array.from({ length: 2 * RPM }, (_, i) =>
          proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/public/storm-${wave}-${i}`), 'storm'),
        ),
      )
      stormAdmitted += answers.filter((r) => r.status === 200).length
      await new Promise((r) => setTimeout(r, 30))
    }
    t.ok(
      stormAdmitted >= RPM - 2 && stormAdmitted <= RPM + 1,
      `five waves of ${2 * RPM} at both instances: admitted ${stormAdmitted} against a budget of ${RPM}`,
    )

    // Near the end of the budget the last tokens may sit with the other instance for a sync interval,
    // so a request can be refused a little early (Retry-After 1); never in the first half.
    t.ok(
      statuses.slice(0, RPM / 2).every((s) => s === 200),
      `nothing is refused in the first half of the budget: ${statuses.join(' ')}`,
    )
  })

  t.test('requests that come now and then are admitted at once on either instance', async (t) => {
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      statuses.push((await proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/public/sparse-${i}`), 'sparse')).status)
      await new Promise((r) => setTimeout(r, 1200)) // longer than the second after which held tokens go back
    }
    t.same(statuses, [200, 200, 200, 200], 'a reserve is kept where the agent was quiet')
  })

  t.test('an instance that restarts mid-minute does not hand out a second budget', async (t) => {
    await clearOfMinuteEnd(40_000)
    const spend = await Promise.all(
      Array.from({ length: 2 * RPM }, (_, i) =>
        proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/public/restart-${i}`), 'restart'),
      ),
    )
    const before = spend.filter((r) => r.status === 200).length
    const fresh = await start()
    t.teardown(() => fresh.proc.child.kill('SIGKILL'))
    const after = await Promise.all(
      Array.from({ length: RPM }, (_, i) => proxiedGet(fresh.proxyPort, at(`/public/restart-new-${i}`), 'restart')),
    )
    const more = after.filter((r) => r.status === 200).length
    t.ok(
      before + more <= RPM + 1,
      `admitted ${before} before and ${more} on the new instance, against a budget of ${RPM}`,
    )
    fresh.proc.child.kill('SIGKILL')
  })

  t.test('an approval made on one instance applies on the other within a second', async (t) => {
    // Agent `other`: the others' budgets are spent by now. Blocked on A, approved through B's API
    // (B finds A's record in the stream), applied on A; revoked on A, closed on B.
    const blocked = await proxiedGet(a.proxyPort, at('/private/report.txt'), 'other')
    t.equal(blocked.headers['x-portcullis-decision'], 'denied_path')
    const requestId = String(blocked.headers['x-portcullis-request-id'])
    await waitFor(
      'the denial in the stream',
      async () =>
        (await checker.xlen('pc:events')) > 0 &&
        (await checker.xrevrange('pc:events', '+', '-', 'COUNT', 50)).some(([, f]) => f.join(' ').includes(requestId)),
    )
    const made = await adminCall<{ id: string; host: string; path: string }>(
      b.adminUrl,
      'POST',
      '/api/approvals',
      { request_id: requestId, scope: 'exact', ttl: '1h', reason: 'shared test' },
      ADMIN_TOKEN,
    )
    t.equal(made.status, 201, 'B approves a request A blocked')
    t.match(made.body, { host: 'origin.test', path: '/private/report.txt' })
    const t0 = Date.now()
    t.ok(
      await until(
        async () => (await proxiedGet(a.proxyPort, at('/private/report.txt'), 'other')).status === 200,
        1000,
        50,
      ),
      'instance A lets the approved request through',
    )
    t.ok(Date.now() - t0 <= 1100, `within a second (${Date.now() - t0} ms)`)
    t.equal((await proxiedGet(b.proxyPort, at('/private/report.txt'), 'other')).status, 200, 'and so does B')
    t.equal(
      (await proxiedGet(b.proxyPort, at('/private/other.txt'), 'other')).status,
      403,
      'an exact approval opens nothing else',
    )
    const listed = await adminCall<{ approvals: Array<{ id: string }> }>(
      a.adminUrl,
      'GET',
      '/api/approvals',
      undefined,
      ADMIN_TOKEN,
    )
    t.ok(
      listed.body.approvals.some((x) => x.id === made.body.id),
      'A lists the approval made on B',
    )
    t.equal(
      (await adminCall(a.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`, undefined, ADMIN_TOKEN)).status,
      200,
    )
    // A GET in flight on B when the revocation lands there is closed with the rest of what the approval
    // opened (revalidate.ts): no answer at all is then as good as "not yet", and the next poll gets the 403.
    t.ok(
      await until(
        async () =>
          (await proxiedGet(b.proxyPort, at('/private/report.txt'), 'other').then(
            (r) => r.status,
            () => 0,
          )) === 403,
        1000,
        50,
      ),
      'revoking on A closes it on B within a second',
    )
  })

  t.test("one telemetry stream holds both instances' records, readable from either", async (t) => {
    await waitFor('records in the stream', async () => (await checker.xlen('pc:events')) >= 2 * RPM)
    const events = await adminCall<{
      events: Array<{ event: string; path?: string; reason?: string }>
      source: string
    }>(b.adminUrl, 'GET', '/api/events?decision=deny&reason=denied_path&limit=50', undefined, ADMIN_TOKEN)
    t.equal(events.status, 200)
    t.equal(events.body.source, 'redis')
    t.ok(
      events.body.events.some((e) => e.path === '/private/report.txt'),
      'B serves the denial A recorded',
    )
    const page = await adminCall<{ events: unknown[]; next_cursor: string | null }>(
      a.adminUrl,
      'GET',
      '/api/events?limit=5',
      undefined,
      ADMIN_TOKEN,
    )
    t.equal(page.body.events.length, 5)
    t.match(page.body.next_cursor, /^\d+-\d+$/, 'a Redis page continues from a stream id')
    const next = await adminCall<{ events: unknown[] }>(
      a.adminUrl,
      'GET',
      `/api/events?limit=5&cursor=${page.body.next_cursor}`,
      undefined,
      ADMIN_TOKEN,
    )
    t.equal(next.status, 200)
    t.equal(next.body.events.length, 5)
    t.equal(await metric(a.adminUrl, 'portcullis_limits_redis_fallback'), 0)
  })

  t.test('the live stream of one instance shows what another instance decided', async (t) => {
    const ctl = new AbortController()
    t.teardown(() => ctl.abort())
    const res = await fetch(`${a.adminUrl}/api/events/stream?decision=deny`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: ctl.signal,
    })
    t.equal(res.status, 200)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    const seen = (async (): Promise<boolean> => {
      const deadline = Date.now() + 5000
      while (Date.now() < deadline) {
        const { value, done } = await reader.read()
        if (done) return false
        text += Buffer.from(value).toString('utf8')
        if (text.includes('/private/seen-on-b')) return true
      }
      return false
    })()
    await new Promise((r) => setTimeout(r, 200))
    const denied = await proxiedGet(b.proxyPort, at('/private/seen-on-b'), 'other')
    t.equal(denied.status, 403)
    t.ok(await seen, 'A streams the denial B made')
    t.match(text, /event: decision\ndata: \{[^\n]*"path":"\/private\/seen-on-b"/)
    t.equal(text.split('/private/seen-on-b').length - 1, 1, 'once, not duplicated')
  })

  t.test(
    'Redis stalled (connected, not answering): the admin API answers from memory instead of hanging',
    async (t) => {
      redis.pause()
      t.teardown(() => redis.resume())
      const t0 = Date.now()
      const page = await adminCall<{ source: string; next_cursor: string | null }>(
        a.adminUrl,
        'GET',
        '/api/events?limit=5',
        undefined,
        ADMIN_TOKEN,
      )
      t.equal(page.status, 200)
      t.equal(page.body.source, 'memory')
      t.equal(page.body.next_cursor, null, 'no cursor that could not be used')
      t.ok(Date.now() - t0 < 5000, `answered in ${Date.now() - t0} ms`)
      t.equal(
        (await proxiedGet(a.proxyPort, at('/public/while-stalled'), 'other')).status,
        200,
        'the proxy serves meanwhile',
      )
      redis.resume()
      await waitFor('Redis answers again', async () => (await checker.ping().catch(() => '')) === 'PONG')
      await waitFor(
        'limits shared again',
        async () =>
          (await metric(a.adminUrl, 'portcullis_limits_redis_fallback')) === 0 &&
          (await metric(b.adminUrl, 'portcullis_limits_redis_fallback')) === 0,
      )
    },
  )

  t.test('Redis down: the proxy keeps serving, limits go local, records wait and arrive after restart', async (t) => {
    const fallbacksBefore = a.proc.parsed().filter((r) => r.code === 'PC_LIMITS_LOCAL_FALLBACK').length
    await redis.kill()
    await waitFor(
      'the fallback warning',
      () => a.proc.parsed().filter((r) => r.code === 'PC_LIMITS_LOCAL_FALLBACK').length > fallbacksBefore,
      5000,
    )
    const during = await proxiedGet(a.proxyPort, at('/public/during-outage'), 'other')
    t.equal(during.status, 200, 'the proxy still serves')
    t.equal(await metric(a.adminUrl, 'portcullis_limits_redis_fallback'), 1, '/metrics shows the local fallback')
    const health = (await (await fetch(`${a.adminUrl}/healthz`)).json()) as { warnings: string[] }
    t.match(health.warnings.join('\n'), /Redis unreachable/, 'and /healthz says so')
    t.ok((await metric(a.adminUrl, 'portcullis_telemetry_backlog')) >= 1, 'the record waits in the buffer')
    const fallback = await adminCall<{ source: string; events: Array<{ path?: string }> }>(
      a.adminUrl,
      'GET',
      '/api/events?limit=10',
      undefined,
      ADMIN_TOKEN,
    )
    t.equal(fallback.status, 200)
    t.equal(fallback.body.source, 'memory', "/api/events falls back to this instance's memory")
    t.ok(fallback.body.events.some((e) => e.path === '/public/during-outage'))
    const blocked = await proxiedGet(a.proxyPort, at('/private/during-outage'), 'other')
    const refused = await adminCall<{ error: string }>(
      a.adminUrl,
      'POST',
      '/api/approvals',
      { request_id: blocked.headers['x-portcullis-request-id'], ttl: '1h' },
      ADMIN_TOKEN,
    )
    t.match(
      refused,
      { status: 503, body: { error: 'approvals_unavailable' } },
      'a new approval waits for Redis, and says so',
    )

    await redis.start()
    await waitFor(
      'the outage record in the stream',
      async () => {
        const entries = await checker.xrange('pc:events', '-', '+').catch(() => [])
        return entries.some(([, fields]) => fields.some((f) => f.includes('/public/during-outage')))
      },
      15_000,
    )
    t.pass('the record made during the outage reached Redis after the restart')
    t.ok(
      await until(async () => (await metric(a.adminUrl, 'portcullis_limits_redis_fallback')) === 0, 5000),
      'limits are shared again',
    )
    t.equal(
      a.proc.parsed().filter((r) => r.code === 'PC_LIMITS_LOCAL_FALLBACK').length,
      fallbacksBefore + 1,
      'the fallback is logged once per outage',
    )
  })
})

t.test('on a Redis Cluster URL: records, shared limits and approvals work', async (t) => {
  const { redis, client: admin } = await startRedisCluster(t)
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      extra: `telemetry:
  redis: { url: "redis+cluster://127.0.0.1:${redis.port}", stream: "{pc}:events", maxlen: 1000 }
limits: { requests_per_minute: 3 }`,
    }),
  )
  await waitFor('limits shared', () => pc.logLines().some((l) => l.includes('PC_LIMITS_SHARED')))
  const at = (path: string): string => `http://origin.test:${origin.port}${path}`
  const blocked = await proxiedGet(pc.proxyPort, at('/private/x'))
  t.equal(blocked.headers['x-portcullis-decision'], 'denied_path')
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push((await proxiedGet(pc.proxyPort, at(`/public/${i}`))).status)
  t.same(statuses, [200, 200, 200, 429], 'the budget of 3 holds')
  await waitFor('records in the cluster stream', async () => (await admin.xlen('{pc}:events')) >= 5)
  const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
    request_id: String(blocked.headers['x-portcullis-request-id']),
    scope: 'host',
    ttl: '10m',
    reason: 'cluster',
  })
  t.equal(made.status, 201)
  t.equal(Object.keys(await admin.hgetall('portcullis:approvals')).length, 1, 'the approval is stored in the cluster')
  // The budget is spent, so the approved request is now rate limited, not denied_path: the approval applied.
  t.equal(
    (await proxiedGet(pc.proxyPort, at('/private/x'))).headers['x-portcullis-decision'],
    'denied_rate_limited',
    'the approval applies (only the limit is left)',
  )
})
