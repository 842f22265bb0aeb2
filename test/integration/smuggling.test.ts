import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { rawExchange, basicAuth } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { connect } from 'node:net'
import { once } from 'node:events'

t.test('malformed and smuggling-shaped requests get 400/431 and a closed connection', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port]),
  )
  const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
  const target = `http://origin.test:${origin.port}/x`
  const cases: Array<[string, string, RegExp]> = [
    ['Content-Length with Transfer-Encoding', `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['duplicate Content-Length', `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, /^HTTP\/1\.1 400 /],
    ['conflicting Content-Length', `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, /^HTTP\/1\.1 400 /],
    ['bad chunk size', `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['Transfer-Encoding list', `POST ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['space before colon', `GET ${target} HTTP/1.1\r\nHost : origin.test\r\n${auth}\r\n`, /^HTTP\/1\.1 400 /],
    ['garbage', `\x16\x03\x01garbage\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['two Proxy-Authorization headers', `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Proxy-Authorization: Basic b3RoZXI6eA==\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['two Proxy-Authorization headers on CONNECT', `CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n${auth}Proxy-Authorization: Basic b3RoZXI6eA==\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['over-long headers', `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
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

  t.test('a client trickling header bytes is cut off at header_timeout_ms', async (t) => {
    const socket = connect(pc.proxyPort, '127.0.0.1')
    await once(socket, 'connect')
    socket.on('error', () => undefined)
    const started = Date.now()
    const head = `GET ${target} HTTP/1.1\r\nHost: origin.test\r\nX-Slow: ${'a'.repeat(200)}`
    let i = 0
    const timer = setInterval(() => {
      if (i < head.length && !socket.destroyed) socket.write(head[i++] as string)
    }, 50)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    await once(socket, 'close')
    clearInterval(timer)
    const elapsed = Date.now() - started
    t.ok(elapsed < 6000, `closed after ${elapsed} ms despite steady trickling`)
    t.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 408 /)
  })

  t.test('the proxy still serves after all of that', async (t) => {
    const { response } = await rawExchange(pc.proxyPort, `GET ${target} HTTP/1.1\r\nHost: origin.test\r\n${auth}Connection: close\r\n\r\n`)
    t.match(response, /^HTTP\/1\.1 200 /)
  })
})
