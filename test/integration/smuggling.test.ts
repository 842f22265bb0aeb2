import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { rawExchange, basicAuth, trickleUntilClosed } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { until } from '../helpers/poll.js'
import { metric } from '../helpers/admin.js'
import { openTunnel } from '../helpers/tunnel.js'
import { connect, createServer, type AddressInfo } from 'node:net'
import { once } from 'node:events'

t.test('malformed and smuggling-shaped requests get 400/431 and a closed connection', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const target = `http://origin.test:${origin.port}/x`
  const cases: Array<[string, string, RegExp]> = [
    [
      'Content-Length with Transfer-Encoding',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    ['HTTP/2.0 in a request line', `GET ${target} HTTP/2.0\r\nHost: origin.test\r\n${auth}\r\n`, /^HTTP\/1\.1 505 /],
    ['a request line with no version (0.9)', `GET ${target}\r\n\r\n`, /^HTTP\/1\.1 (?:400|505) /],
    [
      'duplicate Content-Length',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'conflicting Content-Length',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'bad chunk size',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'Transfer-Encoding list',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'chunked in an HTTP/1.0 request (RFC 9112 §6.1)',
      `POST ${target} HTTP/1.0\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    ['space before colon', `GET ${target} HTTP/1.1\r\nHost : origin.test\r\n${auth}\r\n`, /^HTTP\/1\.1 400 /],
    ['garbage', `\x16\x03\x01garbage\r\n\r\n`, /^HTTP\/1\.1 400 /],
    [
      'two Proxy-Authorization headers',
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Proxy-Authorization: Basic b3RoZXI6eA==\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'two Proxy-Authorization headers on CONNECT',
      `CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n${auth}Proxy-Authorization: Basic b3RoZXI6eA==\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
    ],
    [
      'over-long headers',
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      /^HTTP\/1\.1 431 [^]*header fields are larger than the proxy accepts/,
    ],
    [
      'an HTTP/1.1 request without Host',
      `GET ${target} HTTP/1.1\r\n${auth}\r\n`,
      /^HTTP\/1\.1 400 [^]*could not parse this request \(missing_host\)/,
    ],
    [
      'an Expect other than 100-continue, answered once',
      `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Expect: foo\r\nContent-Length: 3\r\n\r\nabc`,
      /^HTTP\/1\.1 417 [^]*only Expect: 100-continue(?![^]*HTTP\/1\.1 )/,
    ],
  ]
  for (const [name, request, status] of cases) {
    t.test(name, async (t) => {
      const before = origin.seen.length
      const { response, closed } = await rawExchange(pc.proxyPort, request)
      t.match(response, status)
      t.ok(closed, 'connection closed')
      t.equal(origin.seen.length, before, 'nothing reached the origin')
    })
  }

  t.test('each refusal is one PC_BAD_REQUEST line and counted by detail, without header values', async (t) => {
    const lines = pc
      .logLines()
      .filter((l) => l.includes('"PC_BAD_REQUEST"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    // Every case but the refused Expect (417: understood, not malformed).
    t.equal(lines.length, cases.length - 1, 'one line per refused request')
    for (const line of lines)
      t.match(line, {
        level: 'info',
        listener: 'proxy',
        src: /^127\.0\.0\.1:\d+$/,
        status: Number,
        detail: /^[a-z0-9_]+$/,
      })
    t.same(
      lines.map((l) => l.detail).filter((d) => d === 'duplicate_proxy_authorization'),
      ['duplicate_proxy_authorization', 'duplicate_proxy_authorization'],
      'the detail word of each, on the listener and on CONNECT',
    )
    t.ok(
      lines.some((l) => l.detail === 'cl_te_conflict' || l.detail === 'unexpected_content_length'),
      'CL+TE',
    )
    const written = JSON.stringify(lines)
    for (const secret of [basicAuth('ci', TOKEN).slice(6), 'b3RoZXI6eA==', 'origin.test'])
      t.notOk(written.includes(secret), `no header value in the lines (${secret})`)
    t.equal(
      await metric(pc.adminUrl, 'portcullis_bad_requests_total{detail="duplicate_proxy_authorization"}'),
      2,
      'counted by detail',
    )
  })

  t.test('a request pipelined behind a refused shape is never sent, even on a warm upstream', async (t) => {
    // A kept upstream connection lets a request go out in the very turn it is read: the 400 before it
    // was already written, and its end had emptied the queue the request would have waited in.
    const warm = await rawExchange(pc.proxyPort, `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`, 1000)
    t.match(warm.response, /^HTTP\/1\.1 200 /)
    for (const shape of [
      'Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'Expect: foo\r\nContent-Length: 3\r\n\r\nabc',
    ]) {
      const before = origin.seen.length
      const { response } = await rawExchange(
        pc.proxyPort,
        `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}${shape}` +
          `GET http://origin.test:${origin.port}/pipelined-after HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`,
      )
      t.match(response, /^HTTP\/1\.1 (?:400|417) /, shape)
      t.notMatch(response, /200 OK/, 'one answer, then the close')
      t.equal(origin.seen.length, before, `nothing reached the origin: ${shape.split(':')[0]}`)
    }
  })

  t.test('a client trickling header bytes is cut off at header_timeout_ms', async (t) => {
    const socket = connect(pc.proxyPort, '127.0.0.1')
    await once(socket, 'connect')
    const { answer, elapsedMs } = await trickleUntilClosed(
      socket,
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\nX-Slow: ${'a'.repeat(200)}`,
    )
    t.ok(elapsedMs < 6000, `closed after ${elapsedMs} ms despite steady trickling`)
    t.match(answer, /^HTTP\/1\.1 408 /)
  })

  t.test('the proxy still serves after all of that', async (t) => {
    const { response } = await rawExchange(
      pc.proxyPort,
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`,
    )
    t.match(response, /^HTTP\/1\.1 200 /)
  })
})

/**
 * A body the proxy forwards must stay framed, whatever the method: unframed, the origin would read
 * it as a second request that no one decided (smuggled past path rules).
 */
t.test('request bodies stay framed upstream: no undecided request reaches the origin', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const inner = `GET /private/smuggled HTTP/1.1\r\nHost: origin.test\r\n\r\n`
  const chunked = `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`
  const target = `http://origin.test:${origin.port}/public/ok`
  const shapes: Array<[string, string]> = [
    [
      'GET with a chunked body',
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    ],
    [
      'HEAD with a chunked body',
      `HEAD ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    ],
    [
      'DELETE with a chunked body',
      `DELETE ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    ],
    [
      'OPTIONS with a chunked body',
      `OPTIONS ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`,
    ],
    [
      'Connection naming Content-Length',
      `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: ${inner.length}\r\nConnection: close, content-length\r\n\r\n${inner}`,
    ],
  ]
  for (const [name, request] of shapes) {
    t.test(name, async (t) => {
      const before = origin.seen.length
      const { response } = await rawExchange(pc.proxyPort, request)
      t.match(response, /^HTTP\/1\.1 200 /)
      t.ok(await until(() => origin.seen.length > before), 'the decided request arrived')
      // Give a smuggled second request every chance to show up before counting.
      await new Promise((r) => setTimeout(r, 200))
      const arrived = origin.seen.slice(before)
      t.same(
        arrived.map((r) => r.url),
        ['/public/ok'],
        'only the decided request reached the origin',
      )
      t.equal(arrived[0]?.body, inner, 'with its body as the body')
      t.notOk(
        pc.decisions().some((r) => r.path === '/private/smuggled'),
        'nothing else was decided or sent',
      )
    })
  }
})

/**
 * An origin like python's http.server: it never reads a body (so it parses one as the next request on
 * the connection, unless the request said Connection: close), refuses every POST (401, body unread),
 * and answers each request 25 ms after the one before. Every request line it reads is kept in `seen`.
 */
async function bodyIgnoringOrigin(t: Test): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = []
  const origin = createServer((s) => {
    s.on('error', () => undefined)
    let buffered = ''
    let answers = Promise.resolve()
    s.on('data', (c: Buffer) => {
      buffered += c.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end)
        buffered = buffered.slice(end + 4)
        const [method, path = ''] = head.split(' ')
        seen.push(path)
        const closing = /\r\nconnection: *close/i.test(head)
        const status = method === 'POST' ? '401 Unauthorized' : '200 OK'
        answers = answers
          .then(() => new Promise((r) => setTimeout(r, 25)))
          .then(() => {
            if (s.writable) s.write(`HTTP/1.1 ${status}\r\nContent-Length: ${path.length}\r\n\r\n${path}`)
            if (closing) s.end()
          })
        if (closing) return
      }
    })
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => origin.close())
  return { port: (origin.address() as AddressInfo).port, seen }
}

t.test('a body on a GET cannot smuggle a request past the policy to an origin that ignores it', async (t) => {
  const { port, seen } = await bodyIgnoringOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([port], { paths: ['/public/**'] }))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const hidden = `GET /private/secret HTTP/1.1\r\nHost: origin.test\r\n\r\n`
  const first = `GET http://origin.test:${port}/public/ok HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: ${hidden.length}\r\nConnection: close\r\n\r\n${hidden}`
  const second = `GET http://origin.test:${port}/public/next HTTP/1.1\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`
  for (let i = 0; i < 3; i++) {
    const a = await rawExchange(pc.proxyPort, first)
    t.match(a.response, /^HTTP\/1\.1 200 [^]*\r\n\r\n\/public\/ok$/, 'the GET has its own answer')
    const b = await rawExchange(pc.proxyPort, second)
    t.match(b.response, /^HTTP\/1\.1 200 [^]*\r\n\r\n\/public\/next$/, 'so has the next request')
  }
  await new Promise((r) => setTimeout(r, 200))
  t.notOk(seen.includes('/private/secret'), `the hidden request never reached the origin (it saw ${seen.join(' ')})`)
})

t.test('a refused request with a body ends its upstream connection: its unread body answers nobody', async (t) => {
  const { port, seen } = await bodyIgnoringOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([port], { paths: ['/public/**'] }))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const hidden = `GET /private/secret HTTP/1.1\r\nHost: origin.test\r\n\r\n`
  const post = `POST http://origin.test:${port}/public/form HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: ${hidden.length}\r\nConnection: close\r\n\r\n${hidden}`
  const next = `GET http://origin.test:${port}/public/next HTTP/1.1\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`
  for (let i = 0; i < 3; i++) {
    const a = await rawExchange(pc.proxyPort, post)
    t.match(a.response, /^HTTP\/1\.1 401 [^]*\r\n\r\n\/public\/form$/, 'the POST has its own answer')
    const b = await rawExchange(pc.proxyPort, next)
    t.match(b.response, /^HTTP\/1\.1 200 [^]*\r\n\r\n\/public\/next$/, "the next request has its own, not the body's")
  }
  // The origin read the unread body as a request (its bug): only its answer is kept from the agent.
  t.ok(seen.includes('/private/secret'), 'the origin did read the body as a request')
})

t.test("the client's Connection: close is honoured through the proxy", async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const { response, closed } = await rawExchange(
    pc.proxyPort,
    `GET http://origin.test:${origin.port}/cc HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nConnection: close\r\n\r\n`,
    3000,
  )
  t.match(response, /^HTTP\/1\.1 200 /)
  t.match(response, /\r\nconnection: close\r\n/i)
  t.ok(closed, 'closed after the response, not at the idle timeout')
})

t.test('Expect: 100-continue is answered only once the request is allowed', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const head = (path: string): string =>
    `PUT http://origin.test:${origin.port}${path} HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`
  const denied = await rawExchange(pc.proxyPort, head('/private/x'))
  t.match(denied.response, /^HTTP\/1\.1 403 /, 'a refusal comes first, with no 100 before it')
  t.ok(denied.closed, 'and closes the connection: the body may or may not follow')
  const socket = connect(pc.proxyPort, '127.0.0.1')
  socket.setTimeout(5000, () => socket.destroy())
  await once(socket, 'connect')
  socket.write(head('/public/x'))
  const [first] = (await once(socket, 'data')) as [Buffer]
  t.match(first.toString(), /^HTTP\/1\.1 100 Continue/)
  let answers = ''
  const answered = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if ((answers.match(/HTTP\/1\.1 200 [^]*?\r\n\r\n/g) ?? []).length < n) return
        socket.removeListener('data', onData)
        resolve()
      }
      const onData = (c: Buffer): void => {
        answers += c.toString('latin1')
        check()
      }
      socket.on('data', onData)
    })
  const first200 = answered(1)
  socket.write('body')
  await first200
  t.match(answers, /^HTTP\/1\.1 200 [^]*\r\nconnection: keep-alive\r\n/i, 'told to continue, it stays open')
  t.equal(origin.seen.at(-1)?.body, 'body')
  t.notOk(origin.seen.at(-1)?.headers.expect, 'Expect is not forwarded: the proxy answered it')
  // The body was sent as announced: the next request on the connection is read after it.
  const second200 = answered(2)
  socket.write(head('/public/y').replace('Expect: 100-continue\r\n', '') + 'next')
  await second200
  t.equal(origin.seen.at(-1)?.url, '/public/y')
  t.equal(origin.seen.at(-1)?.body, 'next')
  socket.destroy()
  // An HTTP/1.0 client gets no 1xx: its 100-continue is ignored, and the body it sends is simply read.
  const old = await rawExchange(pc.proxyPort, `${head('/public/old').replace('HTTP/1.1', 'HTTP/1.0')}body`)
  t.match(old.response, /^HTTP\/1\.[01] 200 /, 'the answer first, no 100 Continue')
  t.equal(origin.seen.at(-1)?.body, 'body')
})

t.test('a 204 is passed on without the Content-Length its upstream gave it', async (t) => {
  const origin = createServer((s) => {
    s.on('error', () => undefined)
    s.once('data', () => s.end('HTTP/1.1 204 No Content\r\nContent-Length: 40\r\nConnection: close\r\n\r\n'))
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.teardown(() => origin.close())
  const port = (origin.address() as AddressInfo).port
  const pc = await startPortcullis(t, originOnlyYaml([port]))
  const { response } = await rawExchange(
    pc.proxyPort,
    `GET http://origin.test:${port}/none HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nConnection: close\r\n\r\n`,
  )
  t.match(response, /^HTTP\/1\.1 204 /)
  t.notMatch(response, /content-length/i)
})

t.test('a request pipelined after one that closes the connection is never decided nor forwarded', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const url = (path: string): string => `http://origin.test:${origin.port}${path}`
  const after = (path: string): string =>
    `POST ${url(path)} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 4\r\n\r\nbody`
  const cases: Array<[string, string, RegExp]> = [
    [
      'a refused Expect: 100-continue',
      `POST ${url('/private/x')} HTTP/1.1\r\nHost: origin.test\r\n${auth}Expect: 100-continue\r\nContent-Length: 0\r\n\r\n`,
      /^HTTP\/1\.1 403 /,
    ],
    ['an origin-form request (400)', `GET /x HTTP/1.1\r\nHost: origin.test\r\n\r\n`, /^HTTP\/1\.1 400 /],
    [
      'a duplicate Host (400)',
      `GET ${url('/public/x')} HTTP/1.1\r\nHost: origin.test\r\nHost: other.test\r\n${auth}\r\n`,
      /^HTTP\/1\.1 400 [^\r]*\r\n(?:.*\r\n)*?[^]*duplicate_host/,
    ],
    [
      "the client's own Connection: close",
      `GET ${url('/public/first')} HTTP/1.1\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`,
      /^HTTP\/1\.1 200 /,
    ],
  ]
  for (const [i, [what, first, status]] of cases.entries()) {
    t.test(what, async (t) => {
      const path = `/public/after-${i}`
      const { response, closed } = await rawExchange(pc.proxyPort, first + after(path), 3000)
      t.match(response, status)
      t.equal(response.match(/^HTTP\/1\.1 \d{3} /gm)?.length, 1, 'one answer: to the first request only')
      t.ok(closed, 'and the connection closed')
      t.notOk(
        origin.seen.some((s) => s.url === path),
        'the pipelined request never reached the origin',
      )
      t.notOk(
        pc.records().some((r) => r.event === 'decision' && r.path === path),
        'nor was it decided or recorded',
      )
    })
  }
  t.test('nor after a later one closes it: each waits for the request just before it', async (t) => {
    const get = (path: string, close = false): string =>
      `GET ${url(path)} HTTP/1.1\r\nHost: origin.test\r\n${auth}${close ? 'Connection: close\r\n' : ''}\r\n`
    const { response, closed } = await rawExchange(
      pc.proxyPort,
      get('/public/q1') + get('/public/q2', true) + after('/public/q3'),
      3000,
    )
    t.same(
      [...response.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]),
      ['200', '200'],
      'two answers',
    )
    t.ok(closed, 'then the connection closed')
    t.notOk(
      origin.seen.some((s) => s.url === '/public/q3'),
      'the third never reached the origin',
    )
  })
  t.test('pipelined requests on a kept-alive connection are all answered, in order', async (t) => {
    const get = (path: string, last = false): string =>
      `GET ${url(path)} HTTP/1.1\r\nHost: origin.test\r\n${auth}${last ? 'Connection: close\r\n' : ''}\r\n`
    const { response } = await rawExchange(
      pc.proxyPort,
      get('/public/p1') + get('/private/p2') + get('/public/p3', true),
      3000,
    )
    t.same(
      [...response.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]),
      ['200', '403', '200'],
    )
    t.ok(response.indexOf('origin saw GET /public/p1') < response.indexOf('origin saw GET /public/p3'))
  })
  t.test('a CONNECT pipelined behind a GET is answered after it, allowed or refused', async (t) => {
    const connect = (host: string): string => `CONNECT ${host}:${origin.port} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`
    const get = `GET ${url('/public/before-connect')} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`
    // other.test is refused (explained inside TLS, as this agent trusts the CA: a 200 first, too).
    for (const host of ['origin.test', 'other.test']) {
      const { response } = await rawExchange(pc.proxyPort, get + connect(host), 2500)
      const answers = [...response.matchAll(/^HTTP\/1\.1 \d{3} /gm)].map((m) => m.index)
      t.equal(answers.length, 2, `${host}: two answers`)
      const body = response.indexOf('origin saw GET /public/before-connect')
      t.ok(body > 0 && body < (answers[1] ?? 0), `${host}: the GET's answer, whole, before the CONNECT's`)
    }
  })
})

/** Open a cleartext tunnel to `authority`, write `bytes` inside it, and read everything until it closes (5 s at most). */
async function insideTunnel(t: Test, proxyPort: number, authority: string, bytes: string): Promise<string> {
  const { socket, head } = await openTunnel(proxyPort, authority)
  t.teardown(() => socket.destroy())
  t.match(head, /^HTTP\/1\.1 200/)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const closed = once(socket, 'close')
  socket.write(bytes)
  const guard = setTimeout(() => socket.destroy(), 5000)
  await closed
  clearTimeout(guard)
  return Buffer.concat(chunks).toString('latin1')
}

t.test('a CONNECT inside a cleartext tunnel is answered 405 after the request before it', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const answer = await insideTunnel(
    t,
    pc.proxyPort,
    `origin.test:${origin.port}`,
    `GET /inner HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n` +
      `CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`,
  )
  const statuses = [...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1])
  t.same(statuses, ['200', '405'], 'the GET is answered, then the CONNECT is refused in words')
  t.ok(answer.indexOf('origin saw GET /inner') < answer.indexOf('HTTP/1.1 405'), 'in order')
  t.match(answer, /does not open a tunnel inside a tunnel \(connect_in_tunnel\)/)
})

t.test('inside a tunnel, a bad path or a missing Host is a 400 that says so (not "send absolute-form")', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const host = `origin.test:${origin.port}`
  const answer = await insideTunnel(t, pc.proxyPort, host, `GET /a%zz HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
  t.match(answer, /^HTTP\/1\.1 400 [^]*could not read this request's path \(bad_path\)/)
  t.notMatch(answer, /absolute-form/)
  t.equal(origin.seen.length, 0)
  const noHost = await insideTunnel(t, pc.proxyPort, host, 'GET /x HTTP/1.1\r\n\r\n')
  t.match(noHost, /^HTTP\/1\.1 400 [^]*\(missing_host\): HTTP\/1\.1 requires a Host header/)
  t.notMatch(noHost, /absolute-form/, 'no advice meant for the proxy port')
  const bodyCut = await insideTunnel(
    t,
    pc.proxyPort,
    host,
    `POST /c HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`,
  )
  t.match(bodyCut, /^HTTP\/1\.1 400 /, 'bad chunking')
  const lines = pc
    .logLines()
    .filter((l) => l.includes('"PC_BAD_REQUEST"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(
    lines,
    [
      { listener: 'tunnel', status: 400, detail: 'bad_path', src: /^127\.0\.0\.1:\d+$/ },
      { listener: 'tunnel', status: 400, detail: 'missing_host' },
      { listener: 'tunnel', status: 400, detail: 'invalid_chunk_size' },
    ],
    'each is a PC_BAD_REQUEST line from the tunnel',
  )
})

t.test('inside a tunnel, a request pipelined behind a denied_host_mismatch is never forwarded', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const host = `origin.test:${origin.port}`
  const answer = await insideTunnel(
    t,
    pc.proxyPort,
    host,
    `GET /m1 HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
      `GET /m2 HTTP/1.1\r\nHost: other.test:${origin.port}\r\n\r\n` +
      `DELETE /m3 HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  )
  t.same(
    [...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]),
    ['200', '403'],
  )
  t.match(answer, /x-portcullis-decision: denied_host_mismatch/i)
  t.notOk(
    origin.seen.some((s) => s.url === '/m3'),
    'the DELETE never reached the origin',
  )
  t.notOk(
    pc.records().some((r) => r.event === 'decision' && r.path === '/m3'),
    'nor was it decided',
  )
})

t.test('pipelined requests are forwarded one at a time, on one upstream connection', async (t) => {
  const ports = new Set<number>()
  const origin = await startHttpOrigin(t, (req, res) => {
    ports.add(req.socket.remotePort ?? 0)
    res.end(`origin saw ${req.url}\n`)
  })
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const N = 15
  let burst = ''
  for (let i = 0; i < N; i++)
    burst += `GET http://origin.test:${origin.port}/n${i} HTTP/1.1\r\nHost: origin.test\r\n${auth}${i === N - 1 ? 'Connection: close\r\n' : ''}\r\n`
  const { response } = await rawExchange(pc.proxyPort, burst, 5000)
  const seen = [...response.matchAll(/origin saw (\/n\d+)/g)].map((m) => m[1])
  t.same(
    seen,
    Array.from({ length: N }, (_, i) => `/n${i}`),
    'all answered, in order',
  )
  t.equal(ports.size, 1, 'each waited for the one before it: one upstream connection, reused')
})

t.test('a request refused from its head gets one answer, even when its body is malformed too', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const { response, closed } = await rawExchange(
    pc.proxyPort,
    `POST http://origin.test:${origin.port}/x HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`,
    3000,
  )
  t.match(response, /^HTTP\/1\.1 400 /)
  t.equal(response.match(/^HTTP\/1\.1 \d{3} /gm)?.length, 1, 'not a second 400 for the same request')
  t.ok(closed)
})

t.test('a connection that sends nothing is closed at header_timeout_ms', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const started = Date.now()
  const { response, closed } = await rawExchange(pc.proxyPort, '', 6000)
  t.ok(closed, `closed after ${Date.now() - started} ms`)
  t.match(response, /^HTTP\/1\.1 408 /)
  const socket = connect(pc.proxyPort, '127.0.0.1')
  await once(socket, 'connect')
  const trickled = await trickleUntilClosed(socket, `GET http://origin.test/ HTTP/1.1\r\nX-Slow: ${'a'.repeat(200)}`)
  t.match(trickled.answer, /^HTTP\/1\.1 408 /, 'a trickled head is cut too')
  t.equal(
    await metric(pc.adminUrl, 'portcullis_connections_refused_total{cause="header_timeout"}'),
    2,
    'and /metrics counts both (a slow-header attack left no trace)',
  )
})

t.test('a kept-alive connection that sends only blank lines is closed at idle_timeout_ms', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port]).replace('idle_timeout_ms: 10000', 'idle_timeout_ms: 1500'),
  )
  const socket = connect(pc.proxyPort, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(
    `GET http://origin.test:${origin.port}/ka HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
  )
  const [first] = (await once(socket, 'data')) as [Buffer]
  t.match(first.toString(), /^HTTP\/1\.1 200 /)
  const { elapsedMs } = await trickleUntilClosed(socket, '\r\n'.repeat(100), 200)
  t.ok(elapsedMs < 5000, `closed after ${elapsedMs} ms of CRLF every 200 ms (idle_timeout_ms 1500)`)
})

t.test('bytes after an HTTP/1.0 request do not cut off its answer', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const { response } = await rawExchange(
    pc.proxyPort,
    `POST http://origin.test:${origin.port}/ten HTTP/1.0\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nContent-Length: 0\r\n\r\nnot a request\r\n\r\n`,
  )
  t.match(response, /^HTTP\/1\.1 200 /, 'the real answer, not a 400')
  t.match(response, /origin saw POST \/ten/)
})

t.test('behind an answer in flight: a broken body and a CONNECT wait their turn', async (t) => {
  const origin = await startHttpOrigin(t, (req, res, body) => {
    const answer = (): void => void res.end(`origin saw ${req.method} ${req.url} ${body}\n`)
    if (req.url?.includes('slow')) setTimeout(answer, 300)
    else answer()
  })
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const url = (path: string): string => `http://origin.test:${origin.port}${path}`

  t.test(
    'a queued request whose chunked body breaks is never sent; the connection closes after the answers',
    async (t) => {
      const started = Date.now()
      const { response, closed } = await rawExchange(
        pc.proxyPort,
        `GET ${url('/slow-a')} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n` +
          `POST ${url('/b')} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n`,
        5000,
      )
      t.match(response, /^HTTP\/1\.1 200 [^]*origin saw GET \/slow-a/, 'the answer in flight goes out whole')
      t.ok(closed, 'then the connection closes')
      t.ok(Date.now() - started < 3000, 'at once, not at a timeout')
      t.notOk(
        origin.seen.some((s) => s.url === '/b'),
        'the broken request never reached the origin',
      )
    },
  )

  t.test('a CONNECT pipelined behind two requests is answered after both', async (t) => {
    const { response } = await rawExchange(
      pc.proxyPort,
      `GET ${url('/a')} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n` +
        `GET ${url('/slow-b')} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n` +
        `CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`,
      2500,
    )
    const slow = response.indexOf('origin saw GET /slow-b')
    const established = response.indexOf('HTTP/1.1 200 Connection established')
    t.ok(slow > 0 && established > slow, "the CONNECT's 200 comes after the slow answer, whole")
  })
})
