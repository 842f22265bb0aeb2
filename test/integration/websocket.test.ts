import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t, { type Test } from 'tap'
import { ProxyAgent, WebSocket } from 'undici'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { createTestCa } from '../helpers/test-ca.js'
import { startWsOrigin, readFrame, textFrame } from '../helpers/ws-origin.js'
import { basicAuth } from '../helpers/clients.js'
import { until } from '../helpers/poll.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { openTunnel, readHead } from '../helpers/tunnel.js'
import { adminCall } from '../helpers/admin.js'
import type { CloseRecord, DecisionRecord } from '../../src/telemetry/events.js'

/**
 * WebSocket through the proxy (language servers, MCP, dev servers): the upgrade is decided like any
 * request, then frames flow both ways; a reload that no longer allows it closes it.
 */

/** An absolute-form upgrade written by hand: the answer head, and the socket for frames. */
async function upgrade(
  port: number,
  url: string,
  user = 'ci',
  extraHeaders = '',
  body = '',
): Promise<{ head: string; socket: Socket; rest: Buffer }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  const host = new URL(url).host
  socket.write(
    `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${basicAuth(user, TOKEN)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extraHeaders}\r\n${body}`,
  )
  let buf = Buffer.alloc(0)
  while (!buf.includes('\r\n\r\n')) {
    const got = await Promise.race([once(socket, 'data'), once(socket, 'close').then(() => null)])
    if (got === null) break
    buf = Buffer.concat([buf, got[0] as Buffer])
  }
  const end = buf.indexOf('\r\n\r\n')
  return { head: buf.subarray(0, end < 0 ? buf.length : end).toString('latin1'), socket, rest: buf.subarray(end + 4) }
}

async function echo(socket: Socket, text: string, pending: Buffer = Buffer.alloc(0)): Promise<string> {
  socket.write(textFrame(text, true))
  let buf = pending
  for (;;) {
    const f = readFrame(buf)
    if (f) return f.text
    const [chunk] = (await once(socket, 'data')) as [Buffer]
    buf = Buffer.concat([buf, chunk])
  }
}

/** A CONNECT to ws.test:`port` as `ci`, and TLS inside it (intercepted) when `tls`: the socket to speak HTTP on. */
async function tunnelTo(pc: Portcullis, port: number, tls: boolean): Promise<Socket> {
  const { socket: tunnel } = await openTunnel(pc.proxyPort, `ws.test:${port}`)
  if (!tls) return tunnel
  const socket = tlsConnect({ socket: tunnel, servername: 'ws.test', ca: readFileSync(join(pc.dir, 'ca.pem'), 'utf8') })
  socket.on('error', () => undefined)
  await once(socket, 'secureConnect')
  return socket
}

/** Agent `ci` may reach ws.test (pinned to loopback) on `ports` at `paths`, and by one more rule if given. */
function wsConfig(ports: readonly number[], caFile: string, paths: string, otherRule?: string): string {
  return `upstream:
  ports: [${ports.join(', ')}]
  resolve: { ws.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(caFile)}
groups:
  g:
    allow:
      - host: ws.test
        paths: ${paths}
${otherRule === undefined ? '' : `      - ${otherRule}\n`}agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`
}

t.test('WebSocket through the proxy', async (t) => {
  const ca = createTestCa(t)
  const plain = await startWsOrigin(t)
  const secure = await startWsOrigin(t, ca, ['ws.test'])
  const config = (paths: string): string =>
    wsConfig(
      [plain.port, secure.port],
      ca.certFile,
      paths,
      '{ host: ws.test, paths: ["/paste/**"], inspect_body: true }',
    )
  const pc = await startPortcullis(t, config('["/socket/**"]'))

  t.test('an allowed upgrade is relayed both ways; its close record counts the bytes', async (t) => {
    const { head, socket, rest } = await upgrade(pc.proxyPort, `http://ws.test:${plain.port}/socket/lsp`)
    t.match(head, /^HTTP\/1\.1 101 /)
    t.match(head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i, 'the origin’s handshake answer, untouched')
    t.match(head, /via: 1\.1 portcullis/i)
    t.equal(await echo(socket, 'hello through the proxy', rest), 'hello through the proxy')
    const rec = await pc.waitForRecord<DecisionRecord>((x) => x.event === 'decision' && x.path === '/socket/lsp')
    t.match(rec, { decision: 'allow', method: 'GET', rule: 'g.allow[0]' })
    socket.destroy()
    const closed = await pc.waitForRecord<CloseRecord>((x) => x.event === 'close' && x.id === rec.id)
    t.ok(
      closed.bytes_up > 0 && closed.bytes_down > 0,
      `bytes both ways (${closed.bytes_up} up, ${closed.bytes_down} down)`,
    )
  })

  t.test('an upgrade to a path the rule does not allow is refused like any request', async (t) => {
    const before = plain.upgrades.length
    const { head, socket } = await upgrade(pc.proxyPort, `http://ws.test:${plain.port}/admin`)
    t.match(head, /^HTTP\/1\.1 403 /)
    t.match(head, /x-portcullis-decision: denied_path/i)
    t.equal(plain.upgrades.length, before, 'the origin saw nothing')
    socket.destroy()
  })

  t.test('an upgrade where inspect_body applies is refused: frames would leave unread', async (t) => {
    const before = plain.upgrades.length
    const { head, socket, rest } = await upgrade(pc.proxyPort, `http://ws.test:${plain.port}/paste/live`)
    t.match(head, /^HTTP\/1\.1 403 /)
    t.match(head, /x-portcullis-decision: denied_secret_detected/i)
    let body = rest.toString()
    socket.on('data', (d: Buffer) => (body += d.toString()))
    await until(() => body.includes('Request id'), 2000)
    t.match(body, /a WebSocket connection's content \(its frames\) cannot be inspected, so the rule refuses/)
    t.notMatch(body, /looks like a secret/, 'it carries no secret')
    t.equal(plain.upgrades.length, before, 'the origin saw nothing')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path?.startsWith('/paste/') === true,
    )
    t.match(rec, { decision: 'deny', reason: 'denied_secret_detected', detail: 'uninspectable', rule: 'g.allow[1]' })
    socket.destroy()
  })

  t.test('undici’s WebSocket over ws:// (a CONNECT tunnel) and wss:// (intercepted)', async (t) => {
    const dispatcher = new ProxyAgent({
      uri: pc.proxyUrl,
      token: basicAuth('ci', TOKEN),
      requestTls: { ca: readFileSync(join(pc.dir, 'ca.pem'), 'utf8') },
    })
    t.teardown(() => dispatcher.close())
    for (const url of [`ws://ws.test:${plain.port}/socket/a`, `wss://ws.test:${secure.port}/socket/b`]) {
      const ws = new WebSocket(url, { dispatcher })
      await once(ws, 'open')
      ws.send(`ping ${url}`)
      const [msg] = (await once(ws, 'message')) as [{ data: string }]
      t.equal(msg.data, `ping ${url}`, url)
      ws.close()
      await once(ws, 'close')
    }
    t.ok(secure.upgrades.includes('/socket/b'), 'the wss upgrade reached the TLS origin')
  })

  t.test('inside a CONNECT a WebSocket’s bytes count once: in the CONNECT’s close record', async (t) => {
    const FRAMES = 5
    const frame = textFrame('x'.repeat(60_000), true)
    for (const [flow, port] of [
      ['intercepted', secure.port],
      ['in a CONNECT', plain.port],
    ] as const) {
      const seen = new Set(pc.records().filter((r) => r.event === 'close'))
      const socket = await tunnelTo(pc, port, flow === 'intercepted')
      socket.write(
        `GET /socket/count HTTP/1.1\r\nHost: ws.test:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      )
      const answer = await readHead(socket)
      t.match(answer.head, /^HTTP\/1\.1 101 /, `${flow}: switched`)
      let received = answer.rest.length
      socket.on('data', (d: Buffer) => (received += d.length))
      for (let i = 0; i < FRAMES; i++) socket.write(frame)
      const sent = FRAMES * frame.length
      t.ok(await until(() => received >= FRAMES * 60_000, 5000), `${flow}: the frames came back`)
      socket.destroy()
      await pc.waitForRecord<CloseRecord>((r) => r.event === 'close' && !seen.has(r) && r.bytes_up >= sent)
      await new Promise((r) => setTimeout(r, 300))
      const closes = pc.records().filter((r): r is CloseRecord => r.event === 'close' && !seen.has(r))
      const up = closes.reduce((sum, r) => sum + r.bytes_up, 0)
      const down = closes.reduce((sum, r) => sum + r.bytes_down, 0)
      t.ok(up >= sent && up < sent * 1.5, `${flow}: ${up} bytes up in close records for ${sent} sent`)
      t.ok(down >= received && down < sent * 1.5, `${flow}: ${down} bytes down for ${received} received`)
    }
  })

  t.test('a reload that no longer allows the path closes the open WebSocket', async (t) => {
    const { head, socket, rest } = await upgrade(pc.proxyPort, `http://ws.test:${plain.port}/socket/live`)
    t.match(head, /^HTTP\/1\.1 101 /)
    t.equal(await echo(socket, 'before', rest), 'before')
    const closed = once(socket, 'close')
    pc.rewriteConfig(config('["/other/**"]'))
    const outcome = await pc.app.reload('test')
    t.ok(outcome.ok)
    await closed
    t.ok(await until(() => plain.open() === 0), 'and its upstream side')
  })
})

t.test('a change made while the 101 is awaited closes the upgrade, on every flow', async (t) => {
  const SLOW_MS = 4000
  const ca = createTestCa(t)
  const plain = await startWsOrigin(t, undefined, [], { slowMs: SLOW_MS })
  const secure = await startWsOrigin(t, ca, ['ws.test'], { slowMs: SLOW_MS })
  const config = (paths: string): string => wsConfig([plain.port, secure.port], ca.certFile, paths)
  const wide = config('["/ok/**", "/slow/**"]')
  const narrow = config('["/ok/**"]')
  const pc = await startPortcullis(t, wide)
  const handshake = (target: string, host: string): string =>
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`
  /** The upgrade sent on one flow; the socket it waits on. */
  const send = async (flow: 'absolute-form' | 'in a CONNECT' | 'intercepted', path: string): Promise<Socket> => {
    if (flow === 'absolute-form') {
      const socket = connect(pc.proxyPort, '127.0.0.1')
      socket.on('error', () => undefined)
      await once(socket, 'connect')
      const host = `ws.test:${plain.port}`
      socket.write(`${handshake(`http://${host}${path}`, host)}Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`)
      return socket
    }
    const port = flow === 'intercepted' ? secure.port : plain.port
    const socket = await tunnelTo(pc, port, flow === 'intercepted')
    socket.write(`${handshake(path, `ws.test:${port}`)}\r\n`)
    return socket
  }
  /** Whether `socket` closes within `ms` without an answer (what it got, if it did). */
  const closesUnanswered = async (socket: Socket, ms: number): Promise<string> => {
    let got = ''
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')))
    const closed = await Promise.race([
      once(socket, 'close').then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), ms)),
    ])
    socket.destroy()
    return closed && got === '' ? 'closed' : `still open, got ${JSON.stringify(got.slice(0, 40))}`
  }

  for (const flow of ['absolute-form', 'in a CONNECT', 'intercepted'] as const)
    t.test(`${flow}: a reload that narrows the rule`, async (t) => {
      const origin = flow === 'intercepted' ? secure : plain
      const path = `/slow/${flow.replaceAll(' ', '-')}`
      const socket = await send(flow, path)
      t.ok(await until(() => origin.upgrades.includes(path), 3000), 'the upgrade reached the origin')
      pc.rewriteConfig(narrow)
      t.ok((await pc.app.reload('test')).ok)
      t.equal(await closesUnanswered(socket, SLOW_MS / 2), 'closed', 'closed before the 101')
      t.ok(await until(() => origin.open() === 0, 3000), 'and its upstream side')
      pc.rewriteConfig(wide)
      t.ok((await pc.app.reload('test')).ok)
    })

  t.test('an approval revoked while the 101 is awaited', async (t) => {
    pc.rewriteConfig(narrow)
    t.ok((await pc.app.reload('test')).ok)
    const url = `http://ws.test:${plain.port}/slow/approved`
    const denied = await upgrade(pc.proxyPort, url)
    denied.socket.destroy()
    t.match(denied.head, /^HTTP\/1\.1 403 /)
    const requestId = /x-portcullis-request-id: (\S+)/i.exec(denied.head)?.[1]
    const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      scope: 'exact',
      ttl: '10m',
      reason: 'test',
    })
    t.equal(made.status, 201)
    const before = plain.upgrades.length
    const socket = await send('absolute-form', '/slow/approved')
    t.ok(await until(() => plain.upgrades.length > before, 3000), 'the approved upgrade reached the origin')
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)).status, 200)
    t.equal(await closesUnanswered(socket, SLOW_MS / 2), 'closed', 'closed before the 101')
  })
})

/** A TCP origin that accepts, reads and never answers: how many of its connections are open. */
async function startSilentOrigin(t: Test): Promise<{ port: number; open: () => number; seen: () => string }> {
  const sockets = new Set<Socket>()
  let seen = ''
  const server = createServer((s) => {
    sockets.add(s)
    s.on('data', (d: Buffer) => (seen += d.toString('latin1')))
    s.on('error', () => undefined)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, open: () => sockets.size, seen: () => seen }
}

t.test('an upgrade nothing answers: 504 after idle_timeout_ms, and nothing left open', async (t) => {
  const silent = await startSilentOrigin(t)
  const IDLE_MS = 1500
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${silent.port}]
  resolve: { ws.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  idle_timeout_ms: ${IDLE_MS}
limits: { concurrent_connections: 1 }
groups:
  g:
    allow:
      - host: ws.test
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const url = `http://ws.test:${silent.port}/socket`

  t.test('plain: the upstream is silent', async (t) => {
    const started = Date.now()
    const { head, socket } = await upgrade(pc.proxyPort, url)
    const ms = Date.now() - started
    t.match(head, /^HTTP\/1\.1 504 /, 'a 504 blames the upstream')
    t.match(head, /x-portcullis-decision: upstream_error/i)
    t.ok(ms >= IDLE_MS - 100 && ms < IDLE_MS + 3000, `after ${ms} ms (idle_timeout_ms ${IDLE_MS})`)
    socket.destroy()
    t.ok(await until(() => silent.open() === 0, 3000), 'the upstream connection is closed')
  })

  t.test('inside a CONNECT (cleartext): the same 504', async (t) => {
    const socket = connect(pc.proxyPort, '127.0.0.1')
    socket.on('error', () => undefined)
    await once(socket, 'connect')
    const auth = basicAuth('ci', TOKEN)
    socket.write(
      `CONNECT ws.test:${silent.port} HTTP/1.1\r\nHost: ws.test:${silent.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`,
    )
    await once(socket, 'data')
    const started = Date.now()
    socket.write(
      `GET /socket HTTP/1.1\r\nHost: ws.test:${silent.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    )
    const [answer] = (await once(socket, 'data')) as [Buffer]
    const ms = Date.now() - started
    t.match(answer.toString('latin1'), /^HTTP\/1\.1 504 /, 'a 504, not a silent close')
    t.ok(ms >= IDLE_MS - 100 && ms < IDLE_MS + 3000, `after ${ms} ms`)
    socket.destroy()
    t.ok(await until(() => silent.open() === 0, 3000), 'the upstream connection is closed')
  })

  t.test('a client that leaves first: the upstream side closes and the slot is free again', async (t) => {
    for (let i = 0; i < 3; i++) {
      const socket = connect(pc.proxyPort, '127.0.0.1')
      socket.on('error', () => undefined)
      await once(socket, 'connect')
      socket.write(
        `GET ${url} HTTP/1.1\r\nHost: ws.test:${silent.port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      )
      t.ok(await until(() => silent.open() === 1, 3000), `upgrade ${i} reached the origin`)
      socket.end()
      t.ok(await until(() => silent.open() === 0, 1000), `upgrade ${i}: the upstream side closed with the client`)
    }
  })

  t.test('an upgrade with a body is refused, nothing upstream', async (t) => {
    const before = silent.seen().length
    const { head, socket, rest } = await upgrade(pc.proxyPort, url, 'ci', 'Content-Length: 5\r\n', 'hello')
    t.match(head, /^HTTP\/1\.1 400 /)
    t.match(rest.toString(), /upgrade_with_body/)
    socket.destroy()
    t.equal(silent.seen().length, before, 'the origin got nothing')
  })
})

t.test('an upgrade to an upstream that never accepts: 504 after connect_timeout_ms', async (t) => {
  // A listener whose accept queue is full and never drained: further SYNs go unanswered (loopback only).
  const script = [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'port = s.getsockname()[1]',
    'fill = []',
    'for _ in range(4):',
    '    c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", port)); fill.append(c)',
    'print(port, flush=True)',
    'time.sleep(60)',
  ].join('\n')
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => child.kill())
  const [line] = (await once(child.stdout, 'data')) as [Buffer]
  const port = Number(line.toString().trim())
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${port}]
  resolve: { ws.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  connect_timeout_ms: 700
  idle_timeout_ms: 5000
groups:
  g:
    allow:
      - host: ws.test
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const started = Date.now()
  const { head, socket } = await upgrade(pc.proxyPort, `http://ws.test:${port}/socket`)
  const ms = Date.now() - started
  socket.destroy()
  t.match(head, /^HTTP\/1\.1 504 /)
  t.ok(ms >= 600 && ms < 3000, `after ${ms} ms (connect_timeout_ms 700, idle_timeout_ms 5000)`)
})

t.test('only a switch to the WebSocket asked for is spliced, and only on HTTP/1.1', async (t) => {
  // An origin that answers every upgrade with a 101 to h2c, then logs whatever arrives after it.
  const after: string[] = []
  const seen: string[] = []
  const origin = createServer((s) => {
    s.on('error', () => undefined)
    let answered = false
    s.on('data', (chunk: Buffer) => {
      if (answered) return void after.push(chunk.toString('latin1'))
      answered = true
      const head = chunk.toString('latin1')
      seen.push(head)
      // /bare: a 101 with no protocol named at all; /reflect: a WebSocket 101 that did not read the
      // handshake (httpbin's /status/101), without Sec-WebSocket-Accept or with the wrong one.
      const answer = head.includes('/allowed/bare')
        ? ''
        : head.includes('/allowed/reflect/none')
          ? 'Upgrade: websocket\r\nConnection: Upgrade\r\n'
          : head.includes('/allowed/reflect/wrong')
            ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n'
            : 'Upgrade: h2c\r\nConnection: Upgrade\r\n'
      s.write(`HTTP/1.1 101 Switching Protocols\r\n${answer}\r\n`)
    })
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => origin.close())
  const port = (origin.address() as AddressInfo).port
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${port}]
  resolve: { ws.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
groups:
  g:
    allow:
      - { host: ws.test, paths: ["/allowed/**"] }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const { head, socket } = await upgrade(pc.proxyPort, `http://ws.test:${port}/allowed/ws`)
  t.match(head, /^HTTP\/1\.1 502 /, 'a 101 to h2c is a bad answer, not a splice')
  socket.write(`GET /secret HTTP/1.1\r\nHost: ws.test\r\n\r\n`)
  await new Promise((r) => setTimeout(r, 200))
  socket.destroy()
  t.same(after, [], 'nothing the client sent after it reached the origin')
  const bare = await upgrade(pc.proxyPort, `http://ws.test:${port}/allowed/bare`)
  t.match(bare.head, /^HTTP\/1\.1 502 /, 'a 101 naming no protocol is a bad answer, not passed on')
  bare.socket.destroy()

  for (const path of ['/allowed/reflect/none', '/allowed/reflect/wrong']) {
    const reflected = await upgrade(pc.proxyPort, `http://ws.test:${port}${path}`)
    t.match(reflected.head, /^HTTP\/1\.1 502 /, `${path}: a 101 without this handshake's accept is a bad answer`)
    t.match(reflected.head, /x-portcullis-decision: upstream_error/i)
    reflected.socket.write(`GET /secret HTTP/1.1\r\nHost: ws.test\r\n\r\n`)
    await new Promise((r) => setTimeout(r, 200))
    reflected.socket.destroy()
  }
  t.same(after, [], 'nothing the client sent after a reflected 101 reached the origin')

  const origins = seen.length
  for (const [what, fields] of [
    ['no key', 'Sec-WebSocket-Version: 13\r\n'],
    ['a key of 15 bytes', 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n'],
    ['version 8', 'Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'],
  ] as const) {
    const c = connect(pc.proxyPort, '127.0.0.1')
    c.on('error', () => undefined)
    await once(c, 'connect')
    c.write(
      `GET http://ws.test:${port}/allowed/ws HTTP/1.1\r\nHost: ws.test:${port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${fields}\r\n`,
    )
    const { head, rest } = await readHead(c)
    t.match(`${head}\r\n\r\n${rest.toString('latin1')}`, /^HTTP\/1\.1 400 [^]*bad_websocket_handshake/, `${what}: 400`)
    c.destroy()
  }
  t.equal(seen.length, origins, 'none of them reached the origin')

  const old = connect(pc.proxyPort, '127.0.0.1')
  old.on('error', () => undefined)
  await once(old, 'connect')
  old.write(
    `GET http://ws.test:${port}/allowed/ws HTTP/1.0\r\nHost: ws.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
  )
  const [answer] = (await once(old, 'data')) as [Buffer]
  t.match(answer.toString('latin1'), /^HTTP\/1\.1 400 [^]*upgrade_not_supported/, 'HTTP/1.0 has no Upgrade')
  old.destroy()
})
