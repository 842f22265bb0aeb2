import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { createTestCa } from '../helpers/test-ca.js'
import { curl, trickleUntilClosed } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'

t.test('TLS interception decides every inner request on its full URL', async (t) => {
  const upstreamCa = createTestCa(t)
  const origin = await startHttpsOrigin(t, ['paths.test'], undefined, upstreamCa)
  const wrongName = await startHttpsOrigin(t, ['wrong.test'], undefined, upstreamCa)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port, wrongName.port], `  ca_file: ${JSON.stringify(upstreamCa.certFile)}`)}
groups:
  g:
    allow:
      - host: paths.test
        methods: [GET, HEAD]
        paths: ["/ok/**"]
      - host: origin.test
        paths: ["/**"]
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
  )
  const caFile = join(pc.dir, 'ca.pem')
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', caFile]

  t.test('an allowed path passes, with the proxy credentials kept out of the origin', async (t) => {
    const r = await curl([
      ...via,
      '-H',
      'Proxy-Authorization: Basic c2hvdWxkOm5vdA==',
      `https://paths.test:${origin.port}/ok/file.tgz`,
    ])
    t.equal(r.exitCode, 0, r.stderr)
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/ok\/file\.tgz/)
    const seen = origin.seen.at(-1)
    t.notOk(seen?.headers['proxy-authorization'], 'no Proxy-Authorization upstream')
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/ok/file.tgz')
    t.match(rec, { tls: 'intercept', method: 'GET', decision: 'allow', rule: 'g.allow[0]', scheme: 'https' })
    const connect = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === origin.port,
    )
    t.match(connect, { tls: 'intercept', decision: 'allow' })
    await pc.waitForRecord((x) => x.event === 'close' && x.id === connect.id)
  })

  t.test('an HTTP/1.0 client (ALPN http/1.0 only) is answered', async (t) => {
    const r = await curl([...via, '--http1.0', `https://paths.test:${origin.port}/ok/old-client`])
    t.equal(r.exitCode, 0, r.stderr)
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/ok\/old-client/)
  })

  t.test('an h2-only client (ALPN h2 alone) gets no_application_protocol, and the close record says so', async (t) => {
    const before = new Set(pc.records().map((r) => r.id))
    const { socket: tunnel } = await openTunnel(pc.proxyPort, `paths.test:${origin.port}`)
    const tls = tlsConnect({
      socket: tunnel,
      servername: 'paths.test',
      ca: readFileSync(caFile),
      ALPNProtocols: ['h2'],
    })
    const [err] = (await once(tls, 'error')) as [NodeJS.ErrnoException]
    t.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'the alert says why')
    tunnel.destroy()
    const connect = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === origin.port && !before.has(x.id),
    )
    const closed = await pc.waitForRecord((x) => x.event === 'close' && x.id === connect.id)
    t.match(closed, { client_error: 'no_application_protocol' })
  })

  t.test('a path outside the rule is denied inside the tunnel, with a readable body', async (t) => {
    const r = await curl([...via, `https://paths.test:${origin.port}/other`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_path')
    t.match(r.body, /portcullis blocked GET https:\/\/paths\.test:\d+\/other for agent ci/)
  })

  t.test('a method outside the rule is denied_method', async (t) => {
    const r = await curl([...via, '-X', 'PUT', '--data', 'x', `https://paths.test:${origin.port}/ok/pkg`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_method')
  })

  t.test('an inner Host that differs from the CONNECT host is denied_host_mismatch', async (t) => {
    const r = await curl([...via, '-H', 'Host: origin.test', `https://paths.test:${origin.port}/ok/x`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_host_mismatch')
  })

  /** Raw bytes inside an intercepted connection to paths.test; everything the proxy answers until it closes. */
  const inner = async (data: string): Promise<{ answer: string; closed: boolean }> => {
    const { socket } = await openTunnel(pc.proxyPort, `paths.test:${origin.port}`)
    const tls = tlsConnect({ socket, servername: 'paths.test', ca: readFileSync(caFile) })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')
    let answer = ''
    tls.setEncoding('latin1').on('data', (c: string) => (answer += c))
    tls.write(data)
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000)
      tls.once('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    tls.destroy()
    return { answer, closed }
  }

  t.test('an absolute-form inner target and the Host header must both name the CONNECT host', async (t) => {
    const { answer } = await inner(
      `GET https://paths.test:${origin.port}/ok/abs HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nConnection: close\r\n\r\n`,
    )
    t.match(answer, /^HTTP\/1\.1 403 /)
    t.match(answer, /x-portcullis-decision: denied_host_mismatch/i)
    t.notOk(origin.seen.some((s) => s.url === '/ok/abs'))
    const ok = await inner(
      `GET https://paths.test:${origin.port}/ok/abs-same HTTP/1.1\r\nHost: paths.test:${origin.port}\r\nConnection: close\r\n\r\n`,
    )
    t.match(ok.answer, /^HTTP\/1\.1 200 /, 'both naming it is fine')
  })

  t.test('two inner Host headers are a 400', async (t) => {
    const { answer, closed } = await inner(
      `GET /ok/two-hosts HTTP/1.1\r\nHost: paths.test\r\nHost: origin.test\r\n\r\n`,
    )
    t.match(answer, /^HTTP\/1\.1 400 /)
    t.ok(closed)
    t.notOk(origin.seen.some((s) => s.url === '/ok/two-hosts'))
  })

  t.test('an inner request pipelined after a refusal that closes the connection is not forwarded', async (t) => {
    const { answer, closed } = await inner(
      `GET /ok/x HTTP/1.1\r\nHost: origin.test\r\n\r\nGET /ok/after-mismatch HTTP/1.1\r\nHost: paths.test\r\n\r\n`,
    )
    t.match(answer, /^HTTP\/1\.1 403 /)
    t.equal(answer.match(/^HTTP\/1\.1 \d{3} /gm)?.length, 1)
    t.ok(closed)
    t.notOk(
      origin.seen.some((s) => s.url === '/ok/after-mismatch'),
      'never reached the origin',
    )
    t.notOk(
      pc.records().some((r) => r.event === 'decision' && r.path === '/ok/after-mismatch'),
      'never decided',
    )
  })

  t.test('an upstream certificate for another name is a 502, never an insecure connection', async (t) => {
    const before = wrongName.seen.length
    const r = await curl([...via, `https://origin.test:${wrongName.port}/x`])
    t.equal(r.status, 502)
    t.equal(r.headers['x-portcullis-decision'], 'upstream_error')
    t.match(r.body, /certificate/)
    t.equal(wrongName.seen.length, before, 'no request was sent over the unverified connection')
  })

  t.test('an inner request head trickled byte by byte is cut off at header_timeout_ms', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `paths.test:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: 'paths.test', ca: readFileSync(caFile) })
    await once(tls, 'secureConnect')
    const { answer, elapsedMs } = await trickleUntilClosed(
      tls,
      `GET /ok/x HTTP/1.1\r\nHost: paths.test\r\nX-Slow: ${'a'.repeat(400)}`,
    )
    t.ok(elapsedMs < 6000, `closed after ${elapsedMs} ms despite steady trickling (header_timeout_ms 1500, idle 10000)`)
    t.match(answer, /^HTTP\/1\.1 408 /)
  })

  t.test('a TLS handshake that stalls after the ClientHello is cut off at header_timeout_ms', async (t) => {
    const hello = await captureClientHello('paths.test')
    const { socket, head } = await openTunnel(pc.proxyPort, `paths.test:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 200 /)
    const started = Date.now()
    socket.write(hello) // and then nothing: the handshake never completes
    socket.setTimeout(15_000, () => socket.destroy())
    await once(socket, 'close')
    const elapsed = Date.now() - started
    t.ok(elapsed < 6000, `closed after ${elapsed} ms (header_timeout_ms 1500, idle 10000)`)
  })
})

/** The first flight of a TLS client for `servername`, caught by a loopback listener that never answers. */
async function captureClientHello(servername: string): Promise<Buffer> {
  const server = createNetServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const got = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (b: Buffer) => {
        resolve(b)
        s.destroy()
      }),
    ),
  )
  const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername })
  client.on('error', () => undefined)
  const hello = await got
  client.destroy()
  server.close()
  return hello
}

t.test('an intercepted connection that sends only blank lines is closed at idle_timeout_ms', async (t) => {
  const origin = await startHttpsOrigin(t, ['paths.test'])
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port], `  ca_file: ${JSON.stringify(origin.ca.certFile)}`).replace('idle_timeout_ms: 10000', 'idle_timeout_ms: 1500')}
groups: { g: { allow: [ { host: paths.test, paths: ["/**"] } ] } }
agents: [ { id: ci, token: ${TOKEN_HASH}, groups: [g] } ]
`,
  )
  const { socket } = await openTunnel(pc.proxyPort, `paths.test:${origin.port}`)
  const tls = tlsConnect({ socket, servername: 'paths.test', ca: readFileSync(join(pc.dir, 'ca.pem')) })
  await once(tls, 'secureConnect')
  tls.write('GET /ka HTTP/1.1\r\nHost: paths.test\r\n\r\n')
  const [first] = (await once(tls, 'data')) as [Buffer]
  t.match(first.toString(), /^HTTP\/1\.1 200 /)
  const { elapsedMs } = await trickleUntilClosed(tls, '\r\n'.repeat(100), 200)
  t.ok(elapsedMs < 5000, `closed after ${elapsedMs} ms of CRLF every 200 ms (idle_timeout_ms 1500)`)
})
