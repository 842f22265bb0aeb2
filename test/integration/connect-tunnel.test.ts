import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as tlsConnect } from 'node:tls'
import { createServer, type AddressInfo } from 'node:net'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { curl, rawExchange, basicAuth } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { until } from '../helpers/poll.js'
import type { TelemetryRecord } from '../../src/telemetry/events.js'

t.test('CONNECT tunnels', async (t) => {
  const origin = await startHttpsOrigin(t, ['origin.test'])
  // A bare TCP origin that counts every byte it is sent, to prove nothing reaches upstream before the SNI check.
  let rawBytes = 0
  const raw = createServer((s) => s.on('data', (c: Buffer) => (rawBytes += c.length)))
  raw.listen(0, '127.0.0.1')
  await once(raw, 'listening')
  const rawPort = (raw.address() as AddressInfo).port
  t.teardown(() => raw.close())
  const pc = await startPortcullis(t, originOnlyYaml([origin.port, rawPort], { caFile: origin.ca.certFile }))

  t.test('curl through a spliced tunnel reaches the real origin certificate', async (t) => {
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `ci:${TOKEN}`,
      '--cacert',
      origin.ca.certFile,
      `https://origin.test:${origin.port}/tunnelled`,
    ])
    t.equal(r.exitCode, 0, r.stderr)
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/tunnelled/)
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === origin.port && x.decision === 'allow',
    )
    t.match(rec, { tls: 'tunnel', rule: 'g.allow[0]', agent: 'ci', address: '127.0.0.1', path: null })
    const close = await pc.waitForRecord((x) => x.event === 'close' && x.id === rec.id)
    t.ok(close.event === 'close' && close.bytes_up > 0 && close.bytes_down > 0, 'bytes counted both ways')
  })

  t.test('CONNECT without credentials: 407 with a challenge and Connection: close', async (t) => {
    const { response, closed } = await rawExchange(
      pc.proxyPort,
      `CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`,
    )
    t.match(response, /^HTTP\/1\.1 407 /)
    t.match(response, /proxy-authenticate: Basic realm="portcullis"/i)
    t.match(response, /connection: close/i)
    t.match(response, /x-portcullis-decision: denied_auth_required/i)
    t.ok(closed, 'the proxy closes the connection')
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--cacert',
      origin.ca.certFile,
      `https://origin.test:${origin.port}/`,
    ])
    t.not(r.exitCode, 0)
    t.match(r.stderr, /407/)
  })

  t.test('CONNECT to a port no rule allows is denied_port', async (t) => {
    const { response } = await rawExchange(
      pc.proxyPort,
      `CONNECT origin.test:8443 HTTP/1.1\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
    )
    t.match(response, /^HTTP\/1\.1 403 /)
    t.match(response, /x-portcullis-decision: denied_port/i)
  })

  t.test('an SNI that differs from the CONNECT host is denied before a byte reaches upstream', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${rawPort}`)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: 'other.test', rejectUnauthorized: false })
    const err = await new Promise<Error | null>((resolve) => {
      tls.once('error', resolve)
      tls.once('secureConnect', () => resolve(null))
      tls.once('close', () => resolve(new Error('closed')))
    })
    t.ok(err, 'the handshake fails')
    tls.destroy()
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.port === rawPort && x.decision === 'deny')
    t.match(rec, { reason: 'denied_sni_mismatch', host: 'origin.test' })
    t.equal(rawBytes, 0, 'upstream received nothing')
    // It got its 200, so the connection it was refused on has its close record too.
    t.match(await pc.waitForRecord((x) => x.event === 'close' && x.id === rec.id), { bytes_up: 0, bytes_down: 0 })
  })

  t.test(
    'a client that leaves before its ClientHello: allowed, nothing handled (tls null), and a close record',
    async (t) => {
      const { socket } = await openTunnel(pc.proxyPort, `origin.test:${rawPort}`)
      socket.destroy()
      const rec = await pc.waitForRecord(
        (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === rawPort && x.decision === 'allow',
      )
      t.match(rec, { tls: null })
      t.match(await pc.waitForRecord((x) => x.event === 'close' && x.id === rec.id), { bytes_up: 0, bytes_down: 0 })
    },
  )

  t.test('a client that does not speak TLS in a tunnel is refused', async (t) => {
    const { socket } = await openTunnel(pc.proxyPort, `origin.test:${rawPort}`)
    socket.write('\x00\x01 not a TLS record and not HTTP either\r\n\r\n')
    await once(socket, 'close')
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.port === rawPort && x.decision === 'deny' && x.detail === 'not_tls',
    )
    t.match(rec, { reason: 'denied_sni_mismatch' })
    t.equal(rawBytes, 0, 'upstream received nothing')
  })

  t.test(
    'plain HTTP in a tunnel is decided per request: a Host that differs from the CONNECT host is refused',
    async (t) => {
      const { socket } = await openTunnel(pc.proxyPort, `origin.test:${rawPort}`)
      let answer = ''
      socket.on('data', (c: Buffer) => (answer += c.toString('latin1')))
      // Split mid request line, as a slow link might: still recognised as HTTP.
      socket.write('GET / HT')
      await new Promise((r) => setTimeout(r, 100))
      socket.write('TP/1.1\r\nHost: other.test\r\n\r\n')
      await once(socket, 'close')
      t.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/)
      t.match(answer, /x-portcullis-decision: denied_host_mismatch/)
      const rec = await pc.waitForRecord(
        (x) => x.event === 'decision' && x.port === rawPort && x.reason === 'denied_host_mismatch',
      )
      t.match(rec, { scheme: 'http', tls: null, method: 'GET', path: '/' })
      t.equal(rawBytes, 0, 'upstream received nothing')
    },
  )

  t.test('an idle tunnel is not closed by the HTTP keep-alive timeout', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: 'origin.test', ca: origin.ca.certPem })
    await once(tls, 'secureConnect')
    // Longer than Node's 5 s default keepAliveTimeout would allow, shorter than idle_timeout_ms.
    await new Promise((r) => setTimeout(r, 6000))
    tls.write(`GET /late HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n`)
    const chunks: Buffer[] = []
    tls.on('data', (c: Buffer) => chunks.push(c))
    await once(tls, 'end')
    t.match(Buffer.concat(chunks).toString(), /origin saw GET \/late/)
  })
})

/** Deterministic printable bytes (the test origin reads bodies as text), so both ends can check what crossed the tunnel. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = 32 + ((i * seed + (i >> 9)) % 95)
  return b
}
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('large bodies cross a spliced tunnel intact both ways, to a slow reader too, and are counted', async (t) => {
  // Bigger than loopback's socket buffers, so a stalled reader makes the proxy's writes back up.
  const SIZE = 16 * 1024 * 1024
  const download = pattern(SIZE, 31)
  const origin = await startHttpsOrigin(t, ['origin.test'], (req, res, body) => {
    if (req.method === 'POST') return void res.end(sha256(Buffer.from(body)))
    res.writeHead(200, { 'content-length': SIZE })
    res.end(download)
  })
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { caFile: origin.ca.certFile }))
  const through = async (method: string, body: Buffer | null, slow: boolean): Promise<Buffer> => {
    const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: 'origin.test', ca: origin.ca.certPem })
    await once(tls, 'secureConnect')
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest(
        { method, path: '/x', headers: { host: 'origin.test' }, createConnection: () => tls },
        resolve,
      )
      req.on('error', reject)
      req.end(body ?? undefined)
    })
    const chunks: Buffer[] = []
    let received = 0
    let stallAt = 0
    for await (const c of res) {
      chunks.push(c as Buffer)
      received += (c as Buffer).length
      // A reader that stalls at the start and every 4 MiB, so the proxy's writes to it back up.
      if (slow && received >= stallAt) {
        stallAt += 4 * 1024 * 1024
        await new Promise((r) => setTimeout(r, 250))
      }
    }
    tls.destroy()
    return Buffer.concat(chunks)
  }
  const fast = await through('GET', null, false)
  t.equal(fast.length, SIZE)
  t.equal(sha256(fast), sha256(download), 'download intact')
  const slow = await through('GET', null, true)
  t.equal(sha256(slow), sha256(download), 'download intact to a slow reader')
  const upload = pattern(SIZE, 17)
  const echoed = await through('POST', upload, false)
  t.equal(echoed.toString(), sha256(upload), 'upload intact')
  const closeRecords = (): TelemetryRecord[] => pc.records().filter((r) => r.event === 'close')
  t.ok(await until(() => closeRecords().length >= 3), 'three close records')
  const closes = closeRecords()
  t.ok(closes.filter((c) => c.event === 'close' && c.bytes_down > SIZE).length >= 2, 'both downloads counted down')
  t.ok(
    closes.some((c) => c.event === 'close' && c.bytes_up > SIZE),
    'the upload counted up',
  )
})
