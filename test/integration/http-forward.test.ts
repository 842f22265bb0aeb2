import { once } from 'node:events'
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth, curl, rawExchange } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { CLOSED_PORT } from '../helpers/ports.js'
import { originOnlyYaml, TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'
import { until } from '../helpers/poll.js'
import { runPortcullis } from '../helpers/spawn-portcullis.js'

t.test('plain HTTP forwarding through the real proxy', async (t) => {
  const origin = await startHttpOrigin(t)
  const closedPort = CLOSED_PORT
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port, closedPort])}
groups:
  g:
    allow:
      - host: origin.test
      - host: paths.test
        methods: [GET]
        paths: ["/ok/**"]
      - host: 127.0.0.1
        paths: ["/ip/**"]
      - host: private.test
    deny:
      - host: origin.test
        paths: ["/secret/**"]
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
  )
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]

  t.test('an allowed request reaches the origin without proxy credentials and with Via', async (t) => {
    const r = await curl([
      ...proxy,
      '-H',
      'Connection: X-Drop-Me',
      '-H',
      'X-Drop-Me: 1',
      '-H',
      'Keep-Alive: timeout=5',
      '-H',
      'Transfer_Encoding: chunked',
      '-H',
      'Content_Length: 7',
      '-H',
      'X_Api_Key: kept',
      `http://origin.test:${origin.port}/hello?x=1`,
    ])
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/hello\?x=1/)
    t.match(r.headers.via ?? '', /portcullis/)
    const seen = origin.seen.at(-1)
    t.ok(seen, 'origin was reached')
    t.notOk(seen?.headers['proxy-authorization'], 'Proxy-Authorization is not forwarded')
    t.notOk(seen?.headers['x-drop-me'], 'headers named in Connection are stripped')
    t.notOk(seen?.headers['keep-alive'], 'Keep-Alive is stripped')
    t.notOk(seen?.headers.transfer_encoding, 'an underscore spelling of a framing field is dropped')
    t.notOk(seen?.headers.content_length)
    t.equal(seen?.headers.x_api_key, 'kept', 'other underscore names pass')
    t.match(seen?.headers.via ?? '', /1\.1 portcullis/)
    t.equal(seen?.headers.host, `origin.test:${origin.port}`)
    const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.path === '/hello')
    t.match(rec, {
      decision: 'allow',
      reason: 'allowed',
      rule: 'g.allow[0]',
      agent: 'ci',
      scheme: 'http',
      address: '127.0.0.1',
      would_deny: false,
      tls: null,
    })
    const close = await pc.waitForRecord((r) => r.event === 'close' && r.id === rec.id)
    t.ok(close.event === 'close' && close.bytes_down > 0, 'close record counts bytes down')
    t.notOk(
      pc.logLines().some((l) => l.includes(TOKEN)),
      'the token never appears in the log',
    )
  })

  t.test('no credentials get 407 with a Basic challenge', async (t) => {
    const r = await curl(['--proxy', pc.proxyUrl, `http://origin.test:${origin.port}/`])
    t.equal(r.status, 407)
    t.equal(r.headers['proxy-authenticate'], 'Basic realm="portcullis"')
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_required')
  })

  t.test('a wrong token gets 407 denied_auth_invalid and never reaches the origin', async (t) => {
    const before = origin.seen.length
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', 'ci:wrong', `http://origin.test:${origin.port}/`])
    t.equal(r.status, 407)
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
    t.equal(origin.seen.length, before)
  })

  t.test('a host with no rule is denied with an actionable body', async (t) => {
    const r = await curl([...proxy, `http://other.test:${origin.port}/x`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
    const id = r.headers['x-portcullis-request-id'] ?? ''
    t.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/)
    t.match(r.body, `portcullis blocked GET http://other.test:${origin.port}/x for agent ci: no rule allows this host`)
    t.match(r.body, `portcullis approve ${id}`)
    t.match(r.body, /not a network fault/)
    const rec = await pc.waitForRecord((x) => x.id === id)
    t.match(rec, { decision: 'deny', reason: 'denied_no_rule', rule: null })
  })

  t.test('Accept: application/json gets the same facts as JSON', async (t) => {
    const r = await curl([...proxy, '-H', 'Accept: application/json', `http://origin.test:${origin.port}/secret/key`])
    t.equal(r.status, 403)
    const body = JSON.parse(r.body) as Record<string, unknown>
    t.match(body, {
      reason: 'denied_by_rule',
      agent: 'ci',
      method: 'GET',
      host: 'origin.test',
      path: '/secret/key',
      rule: 'g.deny[0]',
    })
    t.equal(body.request_id, r.headers['x-portcullis-request-id'])
    t.match(String(body.approve_command), /^portcullis approve /)
  })

  t.test('a deny rule’s `/**` covers the bare directory and any case; explain agrees', async (t) => {
    // A case-insensitive origin (IIS, macOS) serves /SECRET/key as /secret/key.
    const before = origin.seen.length
    for (const path of ['/secret', '/secret/', '/SECRET/key', '/Secret']) {
      const r = await curl([...proxy, `http://origin.test:${origin.port}${path}`])
      t.equal(r.status, 403, path)
      t.equal(r.headers['x-portcullis-decision'], 'denied_by_rule', path)
      const explained = await runPortcullis([
        'explain',
        '--config',
        pc.configFile,
        '--agent',
        'ci',
        `http://origin.test:${origin.port}${path}`,
      ])
      t.match(explained.stdout, /^reason: denied_by_rule$/m, `explain ${path}`)
    }
    t.equal(origin.seen.length, before, 'none reached the origin')
    const longer = await curl([...proxy, `http://origin.test:${origin.port}/secretive`])
    t.equal(longer.status, 200, 'a longer name is not the directory')
  })

  t.test('dot segments and encoded dots cannot step around a deny rule', async (t) => {
    const r = await curl([...proxy, '--path-as-is', `http://origin.test:${origin.port}/public/%2e%2e/secret/x`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_by_rule')
  })

  t.test('encoded slashes and ;params cannot step around a path rule at an origin that decodes them', async (t) => {
    const before = origin.seen.length
    for (const path of [
      '/ok/..%2Fsecret',
      '/ok/..%5Csecret',
      '/ok/%2e%2e%2Fsecret',
      '/ok/%252e%252e/secret',
      '/ok/%c0%ae%c0%ae/secret',
    ]) {
      const r = await curl([...proxy, '--path-as-is', `http://paths.test:${origin.port}${path}`])
      t.equal(r.status, 403, path)
      t.equal(r.headers['x-portcullis-decision'], 'denied_path', path)
    }
    for (const path of ['/public/..%2Fsecret/x', '/secret;x/y']) {
      const r = await curl([...proxy, '--path-as-is', `http://origin.test:${origin.port}${path}`])
      t.equal(r.headers['x-portcullis-decision'], 'denied_by_rule', path)
    }
    const nul = await curl([...proxy, '--path-as-is', `http://paths.test:${origin.port}/ok/a.exe%00.txt`])
    t.equal(nul.status, 400, 'an encoded NUL (the path ends there to a C server) is refused')
    t.equal(origin.seen.length, before, 'none reached the origin')
    const fine = await curl([...proxy, `http://paths.test:${origin.port}/ok/a%2Fb`])
    t.equal(fine.status, 200, 'allowed under both readings')
    const percent = await curl([...proxy, `http://paths.test:${origin.port}/ok/100%25.txt`])
    t.equal(percent.status, 200, 'a literal percent sign is no escape')
  })

  t.test('Max-Forwards on TRACE and OPTIONS: decremented, and at 0 answered by the proxy', async (t) => {
    const url = `http://origin.test:${origin.port}/mf`
    const before = origin.seen.length
    const options = await curl([...proxy, '-X', 'OPTIONS', '-H', 'Max-Forwards: 0', url])
    t.equal(options.status, 200)
    t.match(options.headers.allow, /GET, HEAD, POST/)
    const trace = await curl([...proxy, '-X', 'TRACE', '-H', 'Max-Forwards: 0', '-H', 'Cookie: s=1', url])
    t.equal(trace.status, 200)
    t.equal(trace.headers['content-type'], 'message/http')
    t.match(trace.body, /^TRACE http:\/\/origin\.test:\d+\/mf HTTP\/1\.1\r\n/)
    t.notMatch(trace.body, /proxy-authorization|cookie/i, 'credentials are not echoed')
    t.equal(origin.seen.length, before, 'neither reached the origin')
    const onward = await curl([...proxy, '-X', 'OPTIONS', '-H', 'Max-Forwards: 3', url])
    t.equal(onward.status, 200)
    t.equal(origin.seen.at(-1)?.headers['max-forwards'], '2', 'forwarded with one hop less')
    // RFC 9112 §3.2.4: OPTIONS for the server as a whole (absolute-form, empty path) goes on as `*`.
    const whole = await rawExchange(
      pc.proxyPort,
      `OPTIONS http://origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nConnection: close\r\n\r\n`,
      3000,
    )
    t.match(whole.response, /^HTTP\/1\.1 200 /)
    t.equal(origin.seen.at(-1)?.url, '*', 'the origin is asked OPTIONS *')
    const { socket } = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
    socket.write(`OPTIONS * HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nConnection: close\r\n\r\n`)
    await once(socket, 'close')
    t.equal(origin.seen.at(-1)?.url, '*', 'and OPTIONS * inside a tunnel stays *, not /*')
  })

  t.test('method and path rules', async (t) => {
    const ok = await curl([...proxy, `http://paths.test:${origin.port}/ok/a/b`])
    t.equal(ok.status, 200)
    const badPath = await curl([...proxy, `http://paths.test:${origin.port}/nope`])
    t.equal(badPath.headers['x-portcullis-decision'], 'denied_path')
    const badMethod = await curl([...proxy, '-X', 'DELETE', `http://paths.test:${origin.port}/ok/a`])
    t.equal(badMethod.headers['x-portcullis-decision'], 'denied_method')
  })

  t.test('IP-literal spellings are canonicalised before matching', async (t) => {
    const r = await curl([...proxy, `http://0x7f.1:${origin.port}/ip/x`])
    t.equal(r.status, 200)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/ip/x')
    t.match(rec, { host: '127.0.0.1', decision: 'allow', rule: 'g.allow[2]' })
  })

  t.test('a name resolving to a private address is denied end to end', async (t) => {
    const r = await curl([...proxy, `http://private.test:${origin.port}/`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_private_address')
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.host === 'private.test')
    t.match(
      rec,
      { decision: 'deny', reason: 'denied_private_address', address: '127.0.0.2' },
      'the record names the address that was refused',
    )
    t.match(
      r.body,
      /resolves to 127\.0\.0\.2 \(loopback\).*upstream\.allow_private/,
      'so does the body, with the setting',
    )
  })

  t.test('a client that half-closes after its request still gets the answer', async (t) => {
    const socket = connect({ host: '127.0.0.1', port: pc.proxyPort, allowHalfOpen: true })
    await once(socket, 'connect')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    const auth = Buffer.from(`ci:${TOKEN}`).toString('base64')
    // end(): the request, then FIN on the client's sending side.
    socket.end(
      `POST http://origin.test:${origin.port}/half HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: Basic ${auth}\r\nContent-Length: 3\r\n\r\nabc`,
    )
    const guard = setTimeout(() => socket.destroy(), 5000)
    await once(socket, 'close')
    clearTimeout(guard)
    const answer = Buffer.concat(chunks).toString('latin1')
    t.match(answer, /^HTTP\/1\.1 200 /)
    t.match(answer, /origin saw POST \/half/)
  })

  t.test('so does one speaking plain HTTP inside a CONNECT', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`, 'ci', TOKEN)
    t.match(head, /^HTTP\/1\.1 200 /)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.end(`GET /half-in-tunnel HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`)
    const guard = setTimeout(() => socket.destroy(), 5000)
    await once(socket, 'close')
    clearTimeout(guard)
    const answer = Buffer.concat(chunks).toString('latin1')
    t.match(answer, /^HTTP\/1\.1 200 /)
    t.match(answer, /origin saw GET \/half-in-tunnel/)
  })

  t.test('origin-form requests to the proxy are answered 400', async (t) => {
    const r = await curl([`${pc.proxyUrl}/not-a-proxy-request`])
    t.equal(r.status, 400)
  })

  t.test('a port outside upstream.ports is denied_port', async (t) => {
    const r = await curl([...proxy, `http://origin.test:1/`])
    t.equal(r.headers['x-portcullis-decision'], 'denied_port')
  })

  t.test('an allowed host whose server refuses the connection is a 502 upstream_error', async (t) => {
    const r = await curl([...proxy, `http://origin.test:${closedPort}/`])
    t.equal(r.status, 502)
    t.equal(r.headers['x-portcullis-decision'], 'upstream_error')
    t.match(r.body, /refused the connection/)
    t.match(r.body, /not a policy decision/)
  })
})

t.test('a client that leaves mid-answer aborts the upstream exchange at once, quiet origin or not', async (t) => {
  // An answer that starts, then pauses (a long poll, a stream thinking): its upstream sockets, open or not.
  const sockets = new Set<Socket>()
  const quiet = createNetServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => undefined)
    s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nfirst bytes'))
  })
  quiet.listen(0, '127.0.0.1')
  await once(quiet, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    quiet.close()
  })
  const port = (quiet.address() as AddressInfo).port
  const pc = await startPortcullis(t, originOnlyYaml([port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const leave = async (socket: Socket, request: string): Promise<number> => {
    socket.write(request)
    await once(socket, 'data')
    t.equal(sockets.size, 1, 'the answer has begun')
    const left = Date.now()
    socket.end()
    t.ok(await until(() => sockets.size === 0, 3000, 20), 'the upstream side closed')
    return Date.now() - left
  }
  const plain = connect(pc.proxyPort, '127.0.0.1')
  plain.on('error', () => undefined)
  await once(plain, 'connect')
  const ms = await leave(plain, `GET http://origin.test:${port}/poll HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`)
  t.ok(ms < 1000, `plain: within ${ms} ms, not idle_timeout_ms (10 s)`)
  const { socket } = await openTunnel(pc.proxyPort, `origin.test:${port}`)
  socket.on('error', () => undefined)
  const inTunnel = await leave(socket, `GET /poll HTTP/1.1\r\nHost: origin.test:${port}\r\n\r\n`)
  t.ok(inTunnel < 1000, `inside a tunnel: within ${inTunnel} ms`)
})

t.test('an HTTP/1.0 keep-alive client is told Connection: close for a body of no stated length', async (t) => {
  // The origin answers chunked (no Content-Length); chunks cannot go to a 1.0 client.
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const { response, closed } = await rawExchange(
    pc.proxyPort,
    `GET http://origin.test:${origin.port}/ten HTTP/1.0\r\nHost: origin.test\r\n${auth}Connection: keep-alive\r\n\r\n`,
    3000,
  )
  t.match(response, /^HTTP\/1\.1 200 /)
  t.match(response, /\r\nconnection: close\r\n/i, 'close, not keep-alive')
  t.notMatch(response, /transfer-encoding/i, 'not chunked')
  t.match(response, /origin saw GET \/ten/, 'the whole body')
  t.ok(closed, 'and the connection ends the body')
})

t.test('1xx answers reach HTTP/1.1 clients (103 Early Hints, 102), not 1.0 ones', async (t) => {
  const early = createNetServer((s) => {
    s.on('error', () => undefined)
    s.once('data', () =>
      s.end(
        'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
          'HTTP/1.1 102 Processing\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      ),
    )
  })
  early.listen(0, '127.0.0.1')
  await once(early, 'listening')
  t.teardown(() => early.close())
  const port = (early.address() as AddressInfo).port
  const pc = await startPortcullis(t, originOnlyYaml([port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const get = (version: string): string =>
    `GET http://origin.test:${port}/ HTTP/${version}\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`
  const { response } = await rawExchange(pc.proxyPort, get('1.1'), 3000)
  t.same(
    [...response.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]),
    ['103', '102', '200'],
    'the hints, the progress, then the answer',
  )
  t.match(response, /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/style\.css>; rel=preload\r\n\r\n/)
  t.match(response, /\r\n\r\nok$/)
  const old = await rawExchange(pc.proxyPort, get('1.0'), 3000)
  t.same(
    [...old.response.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]),
    ['200'],
    'an HTTP/1.0 client gets the final answer only',
  )
})
