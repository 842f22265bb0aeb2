import { once } from 'node:events'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { createSecureContext } from 'node:tls'
import t, { type Test } from 'tap'
import { createHttp1Client, type Http1Client, type OutgoingRequest } from '../../../src/net/http1-client.js'

/** A raw loopback origin: `answer` sees each request's bytes (as read) and the connection's index. */
async function origin(t: Test, answer: (s: Socket, request: string, conn: number, nth: number) => void) {
  const seen: string[] = []
  let conns = 0
  const server = createServer((s) => {
    const conn = ++conns
    let nth = 0
    s.on('error', () => undefined)
    s.on('data', (d: Buffer) => {
      const request = d.toString('latin1')
      seen.push(request)
      answer(s, request, conn, ++nth)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    connections: () => conns,
  }
}

function client(
  t: Test,
  overrides: { responseHeadTimeoutMs?: number; connectionsPerPool?: number; maxPools?: number } = {},
): Http1Client {
  const c = createHttp1Client({
    connectTimeoutMs: 2000,
    idleTimeoutMs: 5000,
    responseHeadTimeoutMs: overrides.responseHeadTimeoutMs ?? 2000,
    maxHeadBytes: 16 * 1024,
    secureContext: createSecureContext(),
    connectionsPerPool: overrides.connectionsPerPool ?? 8,
    maxPools: overrides.maxPools ?? 4,
  })
  t.teardown(() => c.close())
  return c
}

interface Outcome {
  status?: number
  body: string
  error?: string
}

function send(c: Http1Client, port: number, req: Partial<OutgoingRequest> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' }
    c.dispatch(
      { address: '127.0.0.1', port, tls: false, servername: '' },
      { method: 'GET', path: '/x', headers: ['host', 'o.test'], body: null, ...req },
      {
        onHead(status) {
          out.status = status
          return true
        },
        onData(chunk) {
          out.body += chunk.toString()
          return true
        },
        onComplete: () => resolve(out),
        onError(err) {
          out.error = (err as { code?: string }).code ?? err.message
          resolve(out)
        },
      },
    )
  })
}

const OK = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`

t.test('the request is written as one head; a clean answer leaves the connection for the next', async (t) => {
  const o = await origin(t, (s, _r, conn) => s.write(OK(`c${conn}`)))
  const c = client(t)
  t.same(await send(c, o.port), { status: 200, body: 'c1' })
  t.same(await send(c, o.port), { status: 200, body: 'c1' }, 'the same connection again')
  t.equal(o.connections(), 1)
  t.equal(o.seen[0], 'GET /x HTTP/1.1\r\nhost: o.test\r\n\r\n')
})

t.test('bodies are framed by the client: a buffer by its length, a stream as told', async (t) => {
  const o = await origin(t, (s, r) => (r.endsWith('\r\n\r\n') || r.endsWith('abc') ? s.write(OK('')) : undefined))
  const c = client(t)
  await send(c, o.port, { method: 'POST', body: Buffer.from('abc') })
  t.match(o.seen.join(''), /content-length: 3\r\n\r\nabc$/)
  o.seen.length = 0
  // What the stream gives in one event-loop turn goes up as one chunk (not a chunk per 'data' event).
  await send(c, o.port, { method: 'POST', body: Readable.from([Buffer.from('ab'), Buffer.from('c')]) })
  t.match(o.seen.join(''), /transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/)
  o.seen.length = 0
  await send(c, o.port, {
    method: 'PUT',
    headers: ['content-length', '3'],
    body: Readable.from([Buffer.from('abc')]),
    framing: 'length',
  })
  t.match(o.seen.join(''), /^PUT \/x HTTP\/1\.1\r\ncontent-length: 3\r\n\r\nabc$/)
})

t.test('a value or target that would split the request is never sent', async (t) => {
  const o = await origin(t, (s) => s.write(OK('')))
  const c = client(t)
  for (const req of [
    { headers: ['x-a', 'v\r\nx-injected: 1'] },
    { headers: ['x-a', 'v\nGET / HTTP/1.1'] },
    { headers: ['x-a\r\nb', 'v'] },
    { path: '/x HTTP/1.1\r\nHost: other\r\n\r\nGET /y' },
    { path: '/x y' },
  ])
    t.same(await send(c, o.port, req), { body: '', error: 'HEADER_NOT_SENDABLE' }, JSON.stringify(req))
  t.equal(o.seen.length, 0, 'nothing reached the origin')
})

t.test('a kept-alive connection the origin closed is retried once on a new one', async (t) => {
  // The first connection answers once, then takes the next request and closes without a word.
  const o = await origin(t, (s, _r, conn, nth) => (conn === 1 && nth === 2 ? s.destroy() : s.write(OK(`c${conn}`))))
  const c = client(t)
  t.same(await send(c, o.port), { status: 200, body: 'c1' })
  t.same(await send(c, o.port), { status: 200, body: 'c2' }, 'answered on a new connection')
  t.equal(o.connections(), 2)
  // A body that was streamed cannot go again: the failure is the caller's to answer.
  const o2 = await origin(t, (s, _r, conn, nth) => (conn === 1 && nth === 2 ? s.destroy() : s.write(OK(''))))
  await send(c, o2.port)
  const r = await send(c, o2.port, { method: 'POST', body: Readable.from([Buffer.from('x')]) })
  t.equal(r.error, 'UPSTREAM_CLOSED')
  // The origin may have acted on a POST before the reset: it goes again only when it names an Idempotency-Key.
  const o3 = await origin(t, (s, _r, conn, nth) => (conn === 1 && nth === 2 ? s.destroy() : s.write(OK(`c${conn}`))))
  await send(c, o3.port)
  const post = await send(c, o3.port, { method: 'POST', body: Buffer.from('x') })
  t.equal(post.error, 'UPSTREAM_CLOSED', 'a POST with a whole body is not sent twice')
  const o4 = await origin(t, (s, _r, conn, nth) => (conn === 1 && nth === 2 ? s.destroy() : s.write(OK(`c${conn}`))))
  await send(c, o4.port)
  const keyed = await send(c, o4.port, {
    method: 'POST',
    headers: ['host', 'o.test', 'Idempotency-Key', 'k1'],
    body: Buffer.from('x'),
  })
  t.same(keyed, { status: 200, body: 'c2' }, 'a POST with an Idempotency-Key is')
})

t.test('a connection is not reused after an answer in doubt', async (t) => {
  const o = await origin(t, (s, _r, conn) => s.write(`${OK(`c${conn}`)}HTTP/1.1 200 OK\r\n\r\n`))
  const c = client(t)
  t.same(await send(c, o.port), { status: 200, body: 'c1' }, 'the answer itself was whole')
  t.same(await send(c, o.port), { status: 200, body: 'c2' }, 'the next one went on a new connection')
  const o2 = await origin(t, (s, _r, conn) =>
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nc${conn}`),
  )
  t.same(await send(c, o2.port), { status: 200, body: 'c1' })
  t.same(await send(c, o2.port), { status: 200, body: 'c2' }, 'Connection: close is obeyed')
})

t.test('an answer head that has begun must end within the head deadline', async (t) => {
  const o = await origin(t, (s) => s.write('HTTP/1.1 200 OK\r\n'))
  const c = client(t, { responseHeadTimeoutMs: 200 })
  const started = Date.now()
  t.same(await send(c, o.port), { body: '', error: 'ETIMEDOUT' })
  t.ok(Date.now() - started < 1500)
})

t.test('a whole 1xx head stops the head deadline until the final head begins', async (t) => {
  const o = await origin(t, (s) => {
    s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n')
    setTimeout(() => s.write(OK('late')), 400)
  })
  const c = client(t, { responseHeadTimeoutMs: 200 })
  t.same(await send(c, o.port), { status: 200, body: 'late' })
})

t.test('requests past the pool size wait for a free connection; an abort closes its connection', async (t) => {
  const o = await origin(t, (s, _r, conn) => setTimeout(() => s.write(OK(`c${conn}`)), 20))
  const c = client(t, { connectionsPerPool: 1 })
  const both = await Promise.all([send(c, o.port), send(c, o.port)])
  t.same(both, [
    { status: 200, body: 'c1' },
    { status: 200, body: 'c1' },
  ])
  t.equal(o.connections(), 1)

  let closed: () => void = () => undefined
  const gone = new Promise<void>((r) => (closed = r))
  const silent = await origin(t, (s) => s.once('close', closed))
  const exchange = c.dispatch(
    { address: '127.0.0.1', port: silent.port, tls: false, servername: '' },
    { method: 'GET', path: '/', headers: [], body: null },
    {
      onHead: () => t.fail('no head') as unknown as boolean,
      onData: () => true,
      onComplete: () => t.fail('no answer'),
      onError: () => t.fail('an abort is silent'),
    },
  )
  while (silent.seen.length === 0) await new Promise((r) => setTimeout(r, 5))
  exchange.abort()
  await gone
  t.pass('the origin saw its connection close')
})

t.test('a pool pushed out by newer origins still answers what it holds, then closes', async (t) => {
  let closed: () => void = () => undefined
  const aClosed = new Promise<void>((r) => (closed = r))
  const a = await origin(t, (s, _r, conn, nth) => {
    if (nth === 1) s.once('close', closed)
    setTimeout(() => s.write(OK(`a${conn}.${nth}`)), 50)
  })
  const b = await origin(t, (s) => s.write(OK('b')))
  const c = client(t, { maxPools: 1, connectionsPerPool: 1 })
  // The second request to a waits for the first's connection; b's pool then pushes a's out.
  const first = send(c, a.port)
  const second = send(c, a.port)
  t.same(await send(c, b.port), { status: 200, body: 'b' })
  t.same(await Promise.all([first, second]), [
    { status: 200, body: 'a1.1' },
    { status: 200, body: 'a1.2' },
  ])
  await aClosed
  t.equal(a.connections(), 1, "a's connection served both, then closed")
})
