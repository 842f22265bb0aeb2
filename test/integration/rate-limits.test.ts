import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin, type OriginHandler } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import type { CloseRecord } from '../../src/telemetry/events.js'

/** Rate limits through the real proxy (in memory; the Redis-shared case is in redis-shared.test.ts). */

async function metricsText(adminUrl: string, token: string): Promise<string> {
  const res = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  return res.text()
}

/** The value of one sample line, e.g. `portcullis_requests_total{decision="deny",…}`; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  return 0
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61)
const DOWNLOAD_BYTES = 60 * CHUNK.length

/** A 3.9 MB body sent 64 KiB every 100 ms (6 s in all): long enough to be cut off mid-way. */
const slowDownload: OriginHandler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream' })
  let sent = 0
  const timer = setInterval(() => {
    if (sent++ >= 60 || res.destroyed) {
      clearInterval(timer)
      res.end()
      return
    }
    res.write(CHUNK)
  }, 100)
  res.on('close', () => clearInterval(timer))
}

/** GET /big over TLS through a CONNECT tunnel (trusting `ca`); how much arrived before the connection closed, and how long it took. */
async function downloadThroughTunnel(
  t: Test,
  proxyPort: number,
  originPort: number,
  ca: string,
): Promise<{ received: number; seconds: number }> {
  const { socket, head } = await openTunnel(proxyPort, `origin.test:${originPort}`)
  t.match(head, /^HTTP\/1\.1 200 /)
  const tls = tlsConnect({ socket, servername: 'origin.test', ca })
  await once(tls, 'secureConnect')
  let received = 0
  tls.on('data', (c: Buffer) => (received += c.length))
  tls.on('error', () => undefined)
  const started = Date.now()
  tls.write('GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  await once(tls, 'close')
  return { received, seconds: (Date.now() - started) / 1000 }
}

t.test('requests_per_minute: the budget passes, the next request is 429 with Retry-After', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      extra: 'limits: { requests_per_minute: 3 }',
      agents: { ci: '', roomy: 'limits: { requests_per_minute: 100 }' },
    }),
  )
  const url = `http://origin.test:${origin.port}/a`
  const statuses: number[] = []
  for (let i = 0; i < 3; i++)
    statuses.push((await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url])).status)
  t.same(statuses, [200, 200, 200], 'the budget of 3 passes')
  const seenBefore = origin.seen.length
  const limited = await curl([
    '--proxy',
    pc.proxyUrl,
    '--proxy-user',
    `ci:${TOKEN}`,
    '-H',
    'Accept: application/json',
    url,
  ])
  t.equal(limited.status, 429)
  t.equal(limited.headers['x-portcullis-decision'], 'denied_rate_limited')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After in seconds (${limited.headers['retry-after']})`)
  t.match(JSON.parse(limited.body), {
    reason: 'denied_rate_limited',
    agent: 'ci',
    error: /rate limit/,
    approve_command: null,
  })
  t.notMatch(limited.body, /portcullis approve/, 'no approve hint: an approval cannot lift a rate limit')
  const refused = await adminCall<{ error: string }>(pc.adminUrl, 'POST', '/api/approvals', {
    request_id: limited.headers['x-portcullis-request-id'],
    scope: 'exact',
    ttl: '1h',
  })
  t.equal(refused.status, 409, 'the admin API refuses to approve a rate-limited request')
  t.equal(refused.body.error, 'not_approvable')
  t.equal(origin.seen.length, seenBefore, 'the limited request never reached the origin')
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.reason === 'denied_rate_limited')
  t.match(rec, { agent: 'ci', decision: 'deny', host: 'origin.test' })

  const connect = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  t.match(connect.head, /^HTTP\/1\.1 429 /, 'a CONNECT is limited too')
  t.match(connect.head, /retry-after: \d+/i)
  connect.socket.destroy()

  t.equal(
    (await curl(['--proxy', pc.proxyUrl, '--proxy-user', `roomy:${TOKEN}`, url])).status,
    200,
    'an agent override raises the limit for that agent only',
  )

  const text = await metricsText(pc.adminUrl, pc.adminToken)
  t.equal(
    sample(text, 'portcullis_requests_total', { decision: 'deny', reason: 'denied_rate_limited', agent: 'ci' }),
    2,
    '/metrics counts the limited decisions',
  )
  t.equal(sample(text, 'portcullis_requests_total', { decision: 'allow', reason: 'allowed', agent: 'ci' }), 3)
  t.ok(sample(text, 'portcullis_decision_duration_seconds_count') >= 6, 'decision latency histogram observed')
  t.equal(sample(text, 'portcullis_config_generation'), 1)
  t.ok(sample(text, 'portcullis_bytes_total', { direction: 'down', agent: 'ci' }) > 0, 'bytes by direction and agent')
})

t.test('concurrent_connections: a second tunnel waits for the first to close', async (t) => {
  const origin = await startHttpsOrigin(t, ['origin.test'])
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { extra: 'limits: { concurrent_connections: 1 }' }))
  const first = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  t.match(first.head, /^HTTP\/1\.1 200 /)
  const tlsOverTunnel = tlsConnect({ socket: first.socket, servername: 'origin.test', ca: origin.ca.certPem })
  await once(tlsOverTunnel, 'secureConnect')
  const second = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  t.match(second.head, /^HTTP\/1\.1 429 /, 'the second concurrent tunnel is refused')
  t.match(second.head, /x-portcullis-decision: denied_rate_limited/i)
  second.socket.destroy()
  t.equal(
    sample(await metricsText(pc.adminUrl, pc.adminToken), 'portcullis_active_tunnels'),
    1,
    '/metrics shows the open tunnel',
  )
  tlsOverTunnel.destroy()
  t.ok(
    await until(async () => {
      const again = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
      again.socket.destroy()
      return /^HTTP\/1\.1 200 /.test(again.head)
    }, 3000),
    'closing the first frees the slot',
  )
})

t.test("bytes_per_day: once the day's bytes are used, requests are 429 until midnight UTC", async (t) => {
  const origin = await startHttpOrigin(t, (_req, res) => res.end('x'.repeat(5000)))
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { extra: 'limits: { bytes_per_day: 4000 }' }))
  const url = `http://origin.test:${origin.port}/big`
  const first = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url])
  t.equal(first.status, 200, 'the first request passes (bytes are counted when it completes)')
  t.equal(first.body.length, 5000)
  await pc.waitForRecord((r) => r.event === 'close')
  const second = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url])
  t.equal(second.status, 429)
  const secondsToMidnight = Math.ceil(
    (Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) - Date.now()) / 1000,
  )
  t.ok(
    Math.abs(Number(second.headers['retry-after']) - secondsToMidnight) <= 5,
    'Retry-After points at the next UTC midnight',
  )
  t.match(second.body, /exceeded its rate limit/)
})

t.test('bytes_per_day counts plain-HTTP uploads, which node reads with their head', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { extra: 'limits: { bytes_per_day: 20000 }' }))
  const upload = async (path: string): Promise<number> => {
    const r = await curl([
      ...['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '-H', 'Expect:'],
      ...['--data-binary', 'u'.repeat(10_000), `http://origin.test:${origin.port}${path}`],
    ])
    return r.status
  }
  t.equal(await upload('/1'), 200)
  const rec = await pc.waitForRecord<CloseRecord>((r) => r.event === 'close')
  t.ok(rec.bytes_up >= 10_000, `the close record counts the body up (${rec.bytes_up})`)
  t.equal(await upload('/2'), 200, 'the second passes: counted when it completes')
  await pc.waitForRecord((r) => r.event === 'close' && r.id !== rec.id)
  t.equal(await upload('/3'), 429, 'the third finds the day used up')
})

t.test('refused plain uploads: never billed to the next request; one still coming closes the connection', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const auth = `Proxy-Authorization: Basic ${Buffer.from(`ci:${TOKEN}`).toString('base64')}\r\n`
  const post = (path: string, bytes: number): string =>
    `POST http://origin.test:${origin.port}${path} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: ${bytes}\r\n\r\n${'b'.repeat(bytes)}`
  const open = async (): Promise<{
    socket: Socket
    answers: () => string
    answered: (n: number) => Promise<boolean>
  }> => {
    const socket = connect(pc.proxyPort, '127.0.0.1')
    socket.on('error', () => undefined)
    await once(socket, 'connect')
    let text = ''
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')))
    return {
      socket,
      answers: () => text,
      answered: (n) => until(() => (text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= n, 5000),
    }
  }
  const closeRecords = (): CloseRecord[] => pc.records().filter((r): r is CloseRecord => r.event === 'close')

  // A refused upload read whole with its head: the connection stays, and the next record counts only its own.
  const one = await open()
  one.socket.write(post('/public/a', 5000))
  t.ok(await one.answered(1))
  one.socket.write(post('/private/x', 20_000))
  t.ok(await one.answered(2))
  t.match(one.answers(), /HTTP\/1\.1 403/)
  // Closed when the body was still arriving as it was refused; kept otherwise: the next request goes
  // on this connection or a new one, and either way its record is its own.
  await new Promise((r) => setTimeout(r, 100))
  const next = one.socket.destroyed || one.socket.readableEnded ? await open() : one
  next.socket.write(post('/public/b', 3000))
  t.ok(await next.answered(next === one ? 3 : 1))
  t.ok(await until(() => closeRecords().length >= 2, 5000), 'two close records')
  one.socket.destroy()
  next.socket.destroy()
  const [a = 0, b = 0] = closeRecords().map((r) => r.bytes_up)
  t.ok(a >= 5000 && a < 6000, `the first counts its own upload (${a})`)
  t.ok(b >= 3000 && b < 4000, `the second its own, not the refused one's 20 000 bytes (${b})`)

  // Refused from its head while its body is still to come: answered, and the connection closed.
  const two = await open()
  const refused = post('/private/y', 200_000)
  two.socket.write(refused.slice(0, refused.indexOf('\r\n\r\n') + 4))
  t.ok(await two.answered(1))
  t.match(two.answers(), /^HTTP\/1\.1 403 [^]*connection: close/i)
  t.ok(await until(() => two.socket.destroyed || two.socket.readableEnded, 5000), 'the connection is closed')
  two.socket.destroy()
})

t.test('audit mode records a limited request as would_deny and lets it pass', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      extra: `mode: audit
limits: { requests_per_minute: 1 }`,
    }),
  )
  const url = `http://origin.test:${origin.port}/a`
  t.equal((await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url])).status, 200)
  t.equal(
    (await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url])).status,
    200,
    'audit blocks nothing',
  )
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.reason === 'denied_rate_limited')
  t.match(rec, { would_deny: true, mode: 'audit' })
})

t.test("bytes_per_day closes a long tunnel once the day's bytes are used, not only when it ends", async (t) => {
  const origin = await startHttpsOrigin(t, ['origin.test'], slowDownload)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { extra: 'limits: { bytes_per_day: 300000 }' }))
  const { received, seconds } = await downloadThroughTunnel(t, pc.proxyPort, origin.port, origin.ca.certPem)
  t.ok(received < DOWNLOAD_BYTES, `cut off after ${received} of ${DOWNLOAD_BYTES} bytes`)
  t.ok(seconds < 5, `within ${seconds.toFixed(1)} s (the whole body would take 6 s)`)
  t.ok(
    pc.logLines().some((l) => l.includes('PC_TUNNEL_BYTES_EXHAUSTED')),
    'logged',
  )
  const next = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  t.match(next.head, /^HTTP\/1\.1 429 /, 'and the next tunnel is refused until midnight UTC')
  next.socket.destroy()
})

t.test('audit mode: bytes_per_day used up closes nothing; the next tunnel passes as would_deny', async (t) => {
  const origin = await startHttpsOrigin(t, ['origin.test'], slowDownload)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], { extra: 'mode: audit\nlimits: { bytes_per_day: 300000 }' }),
  )
  const { received } = await downloadThroughTunnel(t, pc.proxyPort, origin.port, origin.ca.certPem)
  t.ok(received >= DOWNLOAD_BYTES, `the whole download (${received} bytes with the head)`)
  t.notOk(
    pc.logLines().some((l) => l.includes('PC_TUNNEL_BYTES_EXHAUSTED')),
    'no tunnel closed',
  )
  const next = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  t.match(next.head, /^HTTP\/1\.1 200 /, 'the next tunnel passes')
  next.socket.destroy()
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.reason === 'denied_rate_limited')
  t.match(rec, { would_deny: true, mode: 'audit', detail: 'bytes_per_day' })
})

t.test('bytes_per_day also cuts a long download inside an intercepted connection', async (t) => {
  const origin = await startHttpsOrigin(t, ['origin.test'], slowDownload)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      caFile: origin.ca.certFile,
      paths: ['/**'],
      extra: 'limits: { bytes_per_day: 300000 }',
    }),
  )
  const { received, seconds } = await downloadThroughTunnel(
    t,
    pc.proxyPort,
    origin.port,
    readFileSync(join(pc.dir, 'ca.pem'), 'utf8'),
  )
  t.ok(received < DOWNLOAD_BYTES, `cut off after ${received} of ${DOWNLOAD_BYTES} bytes`)
  t.ok(seconds < 5, `within ${seconds.toFixed(1)} s`)
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.path === '/big')
  t.match(rec, { tls: 'intercept', decision: 'allow' }, 'it was intercepted')
})
