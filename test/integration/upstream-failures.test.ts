import { once } from 'node:events'
import { join } from 'node:path'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { createTestCa } from '../helpers/test-ca.js'
import { curl } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { CLOSED_PORT } from '../helpers/ports.js'
import type { CloseRecord } from '../../src/telemetry/events.js'

/**
 * An upstream that misbehaves gets the client a clear 502/504 that says what happened, on every
 * flow (plain, intercepted, cleartext inside a CONNECT), never a bare close and never a wait that
 * outlasts the configured deadlines.
 */

type Behaviour = (socket: Socket) => void

const BEHAVIOURS: Record<string, Behaviour> = {
  // Reads the request, then closes without a byte of answer.
  fin: (s) => s.once('data', () => s.end()),
  // Answers something that is not HTTP.
  garbage: (s) => s.once('data', () => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n')),
  // A head, and in the same write a chunk size that is not hex.
  badchunk: (s) =>
    s.once('data', () => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')),
  // A head in bare LFs, the connection left open: it can never end in CRLF CRLF.
  barelf: (s) => s.once('data', () => s.write('HTTP/1.1 200 OK\nContent-Length: 5\n\nhello')),
  // A fine answer that claims to be the proxy's denial.
  spoof: (s) =>
    s.once('data', () =>
      s.end(
        'HTTP/1.1 200 OK\r\nX-Portcullis-Decision: denied_no_rule\r\nX-Portcullis-Request-Id: 01FAKE\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      ),
    ),
  // A head past 64 KiB (Set-Cookie after Set-Cookie).
  bighead: (s) =>
    s.once('data', () =>
      s.end(`HTTP/1.1 200 OK\r\n${`Set-Cookie: c=${'x'.repeat(1000)}\r\n`.repeat(70)}Content-Length: 2\r\n\r\nok`),
    ),
  // A 40 KiB head: more than node's 16 KiB, within the proxy's 64 KiB.
  widehead: (s) =>
    s.once('data', () =>
      s.end(
        `HTTP/1.1 200 OK\r\n${`X-Wide: ${'w'.repeat(1000)}\r\n`.repeat(40)}Content-Length: 2\r\nConnection: close\r\n\r\nok`,
      ),
    ),
  // A head promising 1000 bytes, 10 of them, then the close: a body cut short after the head went out.
  shortbody: (s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789')),
  // Never answers.
  silent: () => undefined,
  // A status line, then one header byte a second: never idle, never done.
  trickle: (s) =>
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\n')
      const timer = setInterval(() => (s.writable ? s.write('X') : clearInterval(timer)), 300)
      s.once('close', () => clearInterval(timer))
    }),
}

/** One raw TCP (or TLS) server per behaviour; the path's first segment picks it by port. */
async function startMisbehaving(t: Test, behaviour: Behaviour, tls?: { key: string; cert: string }) {
  const sockets = new Set<Socket>()
  const onConn = (s: Socket): void => {
    sockets.add(s)
    s.on('error', () => undefined)
    s.once('close', () => sockets.delete(s))
    behaviour(s)
  }
  const server = tls ? createTlsServer(tls, onConn) : createNetServer(onConn)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

t.test('upstream failures are answered with what happened', async (t) => {
  const ca = createTestCa(t)
  const cert = ca.issue(['origin.test'])
  const plain: Record<string, number> = {}
  const secure: Record<string, number> = {}
  for (const [name, b] of Object.entries(BEHAVIOURS)) {
    plain[name] = await startMisbehaving(t, b)
    secure[name] = await startMisbehaving(t, b, cert)
  }
  const ports = [...Object.values(plain), ...Object.values(secure)]
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${ports.join(', ')}]
  resolve: { origin.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(ca.certFile)}
  connect_timeout_ms: 2000
  header_timeout_ms: 1500
  response_header_timeout_ms: 1500
  idle_timeout_ms: 2000
groups:
  g:
    allow:
      - host: origin.test
        paths: ["/**"]
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const cases = [
    ['fin', 502, 'no_answer', /closed the connection without answering/],
    ['garbage', 502, 'bad_answer', /not valid HTTP/],
    ['badchunk', 502, 'bad_answer', /not valid HTTP/],
    ['barelf', 502, 'bad_answer', /not valid HTTP/],
    ['bighead', 502, 'head_too_large', /larger than the 64 KiB the proxy accepts/],
    ['silent', 504, 'timeout', /did not answer in time/],
    ['trickle', 504, 'timeout', /did not answer in time/],
  ] as const

  for (const [name, status, detail, sentence] of cases) {
    t.test(`plain HTTP, upstream ${name}: ${status} upstream_error (${detail})`, async (t) => {
      const started = Date.now()
      const r = await curl([...via, `http://origin.test:${plain[name]}/x`])
      t.equal(r.status, status, r.stderr)
      t.equal(r.headers['x-portcullis-decision'], 'upstream_error')
      t.match(r.body, sentence)
      t.ok(Date.now() - started < 6000, 'within the configured deadlines')
      const rec = await pc.waitForRecord(
        (x) => x.event === 'decision' && x.reason === 'upstream_error' && x.port === plain[name],
      )
      t.match(rec, { detail })
    })

    t.test(`intercepted HTTPS, upstream ${name}: ${status}, not a bare close`, async (t) => {
      const r = await curl([...via, `https://origin.test:${secure[name]}/x`])
      t.equal(r.status, status, r.stderr)
      t.equal(r.headers['x-portcullis-decision'], 'upstream_error')
      t.match(r.body, sentence)
    })
  }

  t.test('a plain answer the upstream cuts short after its head: the close record says how', async (t) => {
    const r = await curl([...via, `http://origin.test:${plain.shortbody}/short`])
    t.equal(r.status, 200, 'the head had gone out')
    t.not(r.exitCode, 0, 'curl sees the body cut short')
    const decision = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.path === '/short' && x.port === plain.shortbody,
    )
    const close = await pc.waitForRecord<CloseRecord>((x) => x.event === 'close' && x.id === decision.id)
    t.match(close, { upstream_error: 'no_answer' })
  })

  t.test('an answer head of 40 KiB is passed on whole', async (t) => {
    for (const url of [`http://origin.test:${plain.widehead}/x`, `https://origin.test:${secure.widehead}/x`]) {
      const r = await curl([...via, url])
      t.equal(r.status, 200, `${url} ${r.stderr}`)
      t.equal(r.body, 'ok', 'and its body')
    }
  })

  t.test('intercepted HTTPS to an upstream that does not speak TLS: 502 bad_answer, not a reset', async (t) => {
    const r = await curl([...via, '-H', 'accept: application/json', `https://origin.test:${plain.garbage}/x`])
    t.equal(r.status, 502, r.stderr)
    t.match(JSON.parse(r.body), { reason: 'upstream_error', detail: 'bad_answer' })
  })

  t.test(
    "an upstream's X-Portcullis-* fields never reach the client: only the proxy says what it decided",
    async (t) => {
      for (const url of [`http://origin.test:${plain.spoof}/x`, `https://origin.test:${secure.spoof}/x`]) {
        const r = await curl([...via, url])
        t.equal(r.status, 200, r.stderr)
        t.equal(r.body, 'ok')
        t.notOk(r.headers['x-portcullis-decision'], url)
        t.notOk(r.headers['x-portcullis-request-id'], url)
      }
    },
  )

  t.test('cleartext HTTP inside a CONNECT to a silent upstream gets the 504 too', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${plain.silent}`)
    t.match(head, /^HTTP\/1\.1 200/)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.write(`GET /x HTTP/1.1\r\nHost: origin.test:${plain.silent}\r\n\r\n`)
    const closed = once(socket, 'close')
    const guard = setTimeout(() => socket.destroy(), 8000)
    await closed
    clearTimeout(guard)
    const answer = Buffer.concat(chunks).toString('latin1')
    t.match(answer, /^HTTP\/1\.1 504 /)
    t.match(answer, /x-portcullis-decision: upstream_error/i)
  })
})

t.test('an allowed CONNECT whose dial is refused: its one record names the rule that allowed it', async (t) => {
  const closed = CLOSED_PORT
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${closed}]
  resolve: { origin.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
groups:
  g:
    allow:
      - host: origin.test
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '-p', `https://origin.test:${closed}/`])
  t.equal(r.status, 502)
  const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.port === closed)
  t.match(rec, { method: 'CONNECT', decision: 'deny', reason: 'upstream_error', detail: 'refused', rule: 'g.allow[0]' })
  t.equal(pc.decisions().filter((x) => x.port === closed).length, 1, 'one record')
})
