import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { createAdminServer } from '../../src/admin/server.js'
import { eventRoutes } from '../../src/admin/routes/events.js'
import { explainRoutes } from '../../src/admin/routes/explain.js'
import { indexApprovals, type Approval, type ApprovalIndex } from '../../src/policy/approvals.js'
import { healthRoutes } from '../../src/admin/routes/health.js'
import { metricsRoutes } from '../../src/admin/routes/metrics.js'
import type { RuntimeConfig } from '../../src/config/types.js'
import { createRuleIndex, type CompiledPolicy, type CompiledRule } from '../../src/policy/compiled.js'
import { parseHostPattern } from '../../src/policy/host-pattern.js'
import { parsePathPattern } from '../../src/policy/path-pattern.js'
import type { CompiledAgent } from '../../src/policy/types.js'
import { createBus, type Bus } from '../../src/telemetry/bus.js'
import { newRequestId, type DecisionRecord, type TelemetryRecord } from '../../src/telemetry/events.js'
import { createRingSink } from '../../src/telemetry/ring-sink.js'
import { waitFor } from '../helpers/poll.js'

const TOKEN = 'admin-test-token'
const AUTH = { authorization: `Bearer ${TOKEN}` }

function deny(over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    time: new Date().toISOString(),
    id: newRequestId(),
    event: 'decision',
    agent: 'ci-42',
    src: '127.0.0.1:5000',
    method: 'GET',
    scheme: 'https',
    host: 'github.com',
    port: 443,
    path: '/acme/other.git/info/refs',
    tls: 'intercept',
    decision: 'deny',
    reason: 'denied_path',
    rule: 'builders.allow[0]',
    mode: 'enforce',
    would_deny: false,
    address: null,
    ...over,
  }
}

function rule(id: string, host: string, paths: string[] | null, ordinal: number): CompiledRule {
  const h = parseHostPattern(host)
  if (!h.ok) throw new Error(h.message)
  const p = paths?.map((x) => {
    const r = parsePathPattern(x)
    if (!r.ok) throw new Error(r.message)
    return r.pattern
  })
  return {
    id,
    effect: 'allow',
    host: h.pattern,
    ports: null,
    methods: null,
    paths: p ?? null,
    interceptNever: false,
    injectHeaders: [],
    inspectBody: false,
    repo: null,
    packages: null,
    ordinal,
  }
}

/** A hand-built policy (config/compile.ts is someone else's): github paths need interception, npm tunnels. */
function testConfig(): RuntimeConfig {
  const agent: CompiledAgent = {
    id: 'ci-42',
    tokenSha256: null,
    sourceCidrs: [],
    groups: ['builders'],
    mode: 'audit',
    limits: { requestsPerMinute: null, concurrentConnections: null, bytesPerDay: null },
  }
  const policy: CompiledPolicy = {
    mode: 'enforce',
    intercept: 'auto',
    defaultPorts: new Set([80, 443]),
    agents: new Map([['ci-42', agent]]),
    sourceAgents: [],
    rules: new Map([
      [
        'ci-42',
        [
          createRuleIndex([
            rule('builders.allow[0]', 'github.com', ['/acme/**'], 0),
            rule('builders.allow[1]', 'registry.npmjs.org', null, 1),
          ]),
        ],
      ],
    ]),
  }
  return { policy } as unknown as RuntimeConfig
}

interface Fixture {
  readonly base: string
  readonly ring: ReturnType<typeof createRingSink>
  readonly bus: Bus
  subscribers(): number
  readonly drops: number[]
  /** The approvals in force that /api/explain sees. */
  setApprovals(list: Approval[]): void
}

async function start(t: Test): Promise<Fixture> {
  const ring = createRingSink(100)
  const inner = createBus()
  let subs = 0
  // Counts live subscriptions, so the test can see the SSE route unsubscribe on close.
  const bus: Bus = {
    sinkFailures: inner.sinkFailures,
    publish: (r) => inner.publish(r),
    subscribe(sink) {
      subs++
      const off = inner.subscribe(sink)
      return () => {
        subs--
        off()
      }
    },
  }
  bus.subscribe(ring)
  const drops: number[] = []
  let approvals: ApprovalIndex = new Map()
  const routes = [
    ...healthRoutes({
      generation: () => 1,
      configError: () => null,
      warnings: () => [],
      ready: () => true,
      startedAt: new Date().toISOString(),
    }),
    ...eventRoutes({ ring, bus, onStreamDrop: (n) => drops.push(n) }),
    ...explainRoutes(testConfig, () => approvals),
    ...metricsRoutes({
      text: async () => 'portcullis_up 1\n',
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
    }),
  ]
  const server = createAdminServer(routes, TOKEN, (err) => t.fail(String(err)))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ring,
    bus,
    subscribers: () => subs - 1,
    drops,
    setApprovals: (list: Approval[]) => void (approvals = indexApprovals(list)),
  }
}

async function getJson(
  base: string,
  path: string,
  headers: Record<string, string> = AUTH,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { headers })
  return { status: res.status, body: await res.json() }
}

t.test('auth: /healthz and /readyz are open, everything else needs the bearer token', async (t) => {
  const f = await start(t)
  t.equal((await getJson(f.base, '/healthz', {})).status, 200)
  t.match(
    await getJson(f.base, '/readyz', {}),
    { status: 200, body: { ready: true } },
    'a readiness probe needs no token',
  )
  t.equal((await getJson(f.base, '/api/events', {})).status, 401, 'no token')
  t.equal((await getJson(f.base, '/api/events', { authorization: 'Bearer nope' })).status, 401, 'wrong token')
  t.equal((await getJson(f.base, '/api/events')).status, 200, 'right token')
  t.equal((await fetch(`${f.base}/metrics`)).status, 401, '/metrics is not open')
  const head = await fetch(`${f.base}/healthz`, { method: 'HEAD' })
  t.equal(head.status, 200, 'HEAD /healthz, as probes and curl -I send it')
  t.equal(await head.text(), '', 'with no body')
  t.equal((await fetch(`${f.base}/api/events`, { method: 'HEAD' })).status, 401, 'HEAD needs the token where GET does')
})

t.test('GET /metrics serves the registry text with its content type', async (t) => {
  const f = await start(t)
  const res = await fetch(`${f.base}/metrics`, { headers: AUTH })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  t.equal(await res.text(), 'portcullis_up 1\n')
})

t.test('GET /api/events filters and pages newest first', async (t) => {
  const f = await start(t)
  const a = deny({ agent: 'a1', host: 'api.github.com' })
  const b = deny({ agent: 'a2', decision: 'allow', reason: 'allowed' })
  const c = deny({ agent: 'a1', host: 'example.com', reason: 'denied_no_rule', rule: null })
  const d = deny({ agent: 'a1', host: 'github.com' })
  for (const r of [a, b, c, d]) f.bus.publish(r)
  const ids = (body: { events: TelemetryRecord[] }): string[] => body.events.map((r) => r.id)

  t.strictSame(ids((await getJson(f.base, '/api/events')).body), [d.id, c.id, b.id, a.id], 'newest first')
  t.strictSame(ids((await getJson(f.base, '/api/events?decision=deny&agent=a1&host=*.github.com')).body), [a.id])
  t.strictSame(ids((await getJson(f.base, '/api/events?reason=denied_no_rule')).body), [c.id])
  const p1 = await getJson(f.base, '/api/events?decision=deny&limit=2')
  t.strictSame(ids(p1.body), [d.id, c.id])
  t.equal(p1.body.next_cursor, c.id)
  const p2 = await getJson(f.base, `/api/events?decision=deny&limit=2&cursor=${p1.body.next_cursor}`)
  t.strictSame(ids(p2.body), [a.id])
  t.equal(p2.body.next_cursor, null)

  const bad = await getJson(f.base, '/api/events?reason=denied_whatever')
  t.equal(bad.status, 400)
  t.match(bad.body, { error: 'bad_query', message: /not a reason code/ })
})

/** Opens the SSE stream; resolves once the headers arrived (the bus subscription exists by then). */
async function openStream(base: string, qs: string): Promise<{ res: IncomingMessage; text(): string; close(): void }> {
  const req = httpRequest(`${base}/api/events/stream${qs}`, { headers: { ...AUTH, accept: 'text/event-stream' } })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  let text = ''
  res.setEncoding('utf8')
  res.on('data', (c: string) => (text += c))
  res.on('error', () => undefined)
  return { res, text: () => text, close: () => req.destroy() }
}

t.test('GET /api/events/stream sends matching records published after connecting', async (t) => {
  const f = await start(t)
  const s = await openStream(f.base, '?decision=deny&agent=ci-42')
  t.equal(s.res.statusCode, 200)
  t.match(s.res.headers['content-type'], /^text\/event-stream/)
  t.equal(f.subscribers(), 1)
  const other = deny({ agent: 'someone-else' })
  const allowed = deny({ decision: 'allow', reason: 'allowed' })
  const wanted = deny()
  for (const r of [other, allowed, wanted]) f.bus.publish(r)
  await waitFor('the frame', () => s.text().includes(wanted.id))
  t.match(s.text(), /^retry: 2000\n/)
  t.ok(s.text().includes(`event: decision\ndata: ${JSON.stringify(wanted)}\n\n`), 'one event/data frame')
  t.notOk(s.text().includes(other.id) || s.text().includes(allowed.id), 'filters apply to the stream')
  const burst = Array.from({ length: 200 }, () => deny())
  for (const r of burst) f.bus.publish(r)
  await waitFor('a same-tick burst', () => s.text().includes(burst[199]?.id ?? '?'))
  t.ok(
    burst.every((r) => s.text().includes(r.id)),
    'a burst within one tick reaches a reading client whole',
  )
  t.strictSame(f.drops, [], 'nothing dropped for a reading client')
  s.close()
  await waitFor('unsubscribe on close', () => f.subscribers() === 0)
  t.pass('the subscription is removed when the client goes away')
})

t.test('a slow SSE client loses records (counted) instead of blocking the bus', async (t) => {
  const f = await start(t)
  const s = await openStream(f.base, '')
  s.res.pause()
  s.res.socket.pause()
  const padding = 'x'.repeat(8192)
  // ~40 MB offered, far beyond loopback socket buffers; publish must return at once every time.
  for (let i = 0; i < 5000; i++) f.bus.publish(deny({ path: `/${padding}` }))
  s.close()
  await waitFor('the drop count', () => f.drops.length > 0)
  t.ok((f.drops[0] ?? 0) > 0, `dropped ${f.drops[0]} records for the slow client`)
  await waitFor('unsubscribe on close', () => f.subscribers() === 0)
})

t.test('GET /api/events/stream refuses bad filters with 400', async (t) => {
  const f = await start(t)
  const r = await getJson(f.base, '/api/events/stream?decision=nope')
  t.equal(r.status, 400)
  t.match(r.body, { error: 'bad_query', message: /decision/ })
  for (const key of ['limit=5', 'cursor=1-0']) {
    const paged = await getJson(f.base, `/api/events/stream?${key}`)
    t.equal(paged.status, 400, `${key}: a stream has no pages`)
    t.match(paged.body, { error: 'bad_query', message: /applies to \/api\/events only/ })
  }
})

t.test('HEAD /api/events/stream answers the head and ends (curl -I, probes)', async (t) => {
  const f = await start(t)
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(), 3000)
  const res = await fetch(`${f.base}/api/events/stream`, { method: 'HEAD', headers: AUTH, signal: ac.signal })
  clearTimeout(timer)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /text\/event-stream/)
})

t.test('GET /api/explain', async (t) => {
  const f = await start(t)
  const CASES: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
    [
      'agent=ci-42&url=https://github.com/acme/x.git/info/refs',
      {
        decision: 'allow',
        reason: 'allowed',
        rule: 'builders.allow[0]',
        via: 'intercept',
        stage: 'request',
        mode: 'audit',
      },
      'path rule allows via interception',
    ],
    [
      'agent=ci-42&url=https://github.com/other/x',
      { decision: 'deny', reason: 'denied_path', rule: 'builders.allow[0]', via: 'intercept' },
      'path rule denies another path',
    ],
    [
      'agent=ci-42&method=post&url=https://registry.npmjs.org/left-pad',
      { decision: 'allow', rule: 'builders.allow[1]', via: 'tunnel' },
      'a host-level rule tunnels',
    ],
    [
      'agent=ci-42&url=https://example.com/',
      { decision: 'deny', reason: 'denied_no_rule', rule: null, stage: 'connect' },
      'no rule denies the CONNECT',
    ],
    [
      'agent=ci-42&url=http://example.com',
      { decision: 'deny', reason: 'denied_no_rule', stage: 'request', path: '/' },
      'plain http has no via',
    ],
    [
      'agent=ci-42&url=https://GitHub.COM./acme/%7Ebob/../x?y=1',
      { decision: 'allow', host: 'github.com', port: 443, path: '/acme/x' },
      'host and path are normalised',
    ],
    [
      'agent=ci-42&url=https://github.com:8443/acme/x',
      { decision: 'deny', reason: 'denied_port', stage: 'connect' },
      'a port outside the defaults',
    ],
  ]
  for (const [qs, expected, behaviour] of CASES) {
    const r = await getJson(
      f.base,
      `/api/explain?${qs.replace(/url=(.*)$/, (_m, u: string) => `url=${encodeURIComponent(u)}`)}`,
    )
    t.equal(r.status, 200, behaviour)
    t.match(r.body, expected, behaviour)
    if (!String(qs).includes('https://')) t.notOk('via' in r.body, 'no via for http')
  }
  t.equal(
    (await getJson(f.base, '/api/explain?agent=nobody&url=https%3A%2F%2Fgithub.com%2F')).status,
    404,
    'unknown agent',
  )
  t.match((await getJson(f.base, '/api/explain?agent=ci-42&url=ftp%3A%2F%2Fx')).body, { error: 'bad_url' })
  // As the proxy reads it (a 400): userinfo, which `\@` makes one parser see and another not.
  t.match(
    (await getJson(f.base, `/api/explain?agent=ci-42&url=${encodeURIComponent('http://ok.test\\@evil.test/')}`)).body,
    {
      error: 'bad_url',
      message: /userinfo/,
    },
  )
  t.equal(
    (await getJson(f.base, '/api/explain?agent=ci-42&url=https%3A%2F%2Fa%20b%2F')).status,
    400,
    'a host with a space',
  )
  t.equal(
    (await getJson(f.base, '/api/explain?agent=ci-42&url=https%3A%2F%2Fgithub.com%2Fa%25zz')).status,
    400,
    'a bad escape',
  )
  t.equal((await getJson(f.base, '/api/explain?url=https%3A%2F%2Fgithub.com%2F')).status, 400, 'agent is required')

  // An approval in force is what traffic gets now, so explain says so.
  const url = `/api/explain?agent=ci-42&url=${encodeURIComponent('https://example.com/pkg/a.tgz')}`
  t.match((await getJson(f.base, url)).body, { decision: 'deny', reason: 'denied_no_rule' })
  f.setApprovals([
    {
      id: 'A1',
      request_id: 'R1',
      agent: 'ci-42',
      scope: 'host',
      method: 'GET',
      host: 'example.com',
      port: 443,
      path: '/pkg/a.tgz',
      created_at: new Date(Date.now() - 1000).toISOString(),
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      approved_by: 'alice',
      reason: 'test',
    },
  ])
  t.match((await getJson(f.base, url)).body, { decision: 'allow', rule: /A1/ }, 'allowed by the approval')
})
