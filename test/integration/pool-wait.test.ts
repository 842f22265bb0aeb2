import { connect, type Socket } from 'node:net'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth, rawExchange } from '../helpers/clients.js'
import { TOKEN, originOnlyYaml } from '../helpers/config.js'
import { until } from '../helpers/poll.js'

/**
 * A request that waits for a connection of a full upstream pool (256 to one origin) is answered once
 * one frees, body and all: the client's body idle guard starts only when the body starts to be read.
 * It cut an uploaded POST at idle_timeout_ms while a GET queued beside it was answered.
 */

const AUTH = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
const POOL = 256
const IDLE_MS = 1500
/** Longer than IDLE_MS: the queued requests wait past the idle timeout before a connection frees. */
const HOLD_MS = 2500

t.test('requests queued behind a full pool are answered when it frees, uploads included', async (t) => {
  let released = false
  const origin = await startHttpOrigin(t, (req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    if (!req.url?.startsWith('/hold')) return void res.end(`origin saw ${req.method} ${req.url} ${body}\n`)
    // An answer that trickles (never idle) until released.
    const timer = setInterval(() => (released ? (clearInterval(timer), res.end('done\n')) : res.write('x')), 300)
    res.on('close', () => clearInterval(timer))
  })
  const yaml = `listen: { host: 127.0.0.1, port: 0, max_unauthenticated_per_source: 1000 }
${originOnlyYaml([origin.port], { extra: 'limits: { requests_per_minute: null, concurrent_connections: null }' }).replace('idle_timeout_ms: 10000', `idle_timeout_ms: ${IDLE_MS}`)}`
  const pc = await startPortcullis(t, yaml)
  const url = `http://origin.test:${origin.port}`
  const held: Socket[] = []
  t.teardown(() => held.forEach((s) => s.destroy()))
  for (let i = 0; i < POOL; i++) {
    const s = connect(pc.proxyPort, '127.0.0.1')
    s.on('error', () => undefined)
    s.on('data', () => undefined)
    held.push(s)
    s.write(`GET ${url}/hold/${i} HTTP/1.1\r\nHost: origin.test\r\n${AUTH}\r\n`)
  }
  // Every pooled connection is taken before the probes arrive.
  await until(() => origin.seen.length >= POOL, 5000, 100)
  t.equal(origin.seen.length, POOL, 'the pool is full')
  setTimeout(() => (released = true), HOLD_MS).unref()
  const [post, chunked, get] = await Promise.all([
    rawExchange(
      pc.proxyPort,
      `POST ${url}/post HTTP/1.1\r\nHost: origin.test\r\n${AUTH}Content-Length: 4\r\nConnection: close\r\n\r\nbody`,
    ),
    rawExchange(
      pc.proxyPort,
      `POST ${url}/chunked HTTP/1.1\r\nHost: origin.test\r\n${AUTH}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    ),
    rawExchange(pc.proxyPort, `GET ${url}/get HTTP/1.1\r\nHost: origin.test\r\n${AUTH}Connection: close\r\n\r\n`),
  ])
  t.match(get.response, /^HTTP\/1\.1 200 [^]*origin saw GET \/get/, 'the queued GET is answered')
  t.match(post.response, /^HTTP\/1\.1 200 [^]*origin saw POST \/post body/, 'the queued POST is answered, body and all')
  t.match(chunked.response, /^HTTP\/1\.1 200 [^]*origin saw POST \/chunked abc/, 'and a chunked one')
  const bodies = origin.seen.filter((r) => r.method === 'POST').map((r) => `${r.url} ${r.body}`)
  t.same(bodies.sort(), ['/chunked abc', '/post body'], 'the origin got both bodies whole')
})

t.test('a client that stops sending its body is closed after idle_timeout_ms', async (t) => {
  const origin = await startHttpOrigin(t)
  const yaml = originOnlyYaml([origin.port]).replace('idle_timeout_ms: 10000', `idle_timeout_ms: ${IDLE_MS}`)
  const pc = await startPortcullis(t, yaml)
  const started = Date.now()
  const stalled = await rawExchange(
    pc.proxyPort,
    `POST http://origin.test:${origin.port}/upload HTTP/1.1\r\nHost: origin.test\r\n${AUTH}Content-Length: 10\r\n\r\nfour`,
  )
  const ms = Date.now() - started
  t.ok(stalled.closed, 'closed by the proxy')
  // The client went silent, not the upstream: no 504 blaming it.
  t.equal(stalled.response, '', 'closed without an answer')
  t.ok(ms >= IDLE_MS - 100 && ms < IDLE_MS + 2500, `after ${ms} ms (idle_timeout_ms ${IDLE_MS})`)
  t.equal(origin.seen.length, 0, 'the origin never got a whole request')
})
