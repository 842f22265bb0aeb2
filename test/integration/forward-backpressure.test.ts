import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth } from '../helpers/clients.js'
import { readHead } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'

const MiB = 2 ** 20
const BODY = 96 * MiB
const CHUNK = Buffer.alloc(MiB, 0x61)

/**
 * The forwarder writes a body in batches (the client socket corked for an event-loop turn) and keeps
 * reading upstream while less than a batch waits: a client that stops reading must still stop the
 * upstream, with no more than the kernel's socket buffers and one batch in between.
 */
t.test('a client that stops reading holds the upstream back, then gets the body intact', async (t) => {
  let written = 0
  const origin = await startHttpOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY) })
    const more = (): void => {
      while (written < BODY) {
        written += CHUNK.length
        if (!res.write(CHUNK)) return void res.once('drain', more)
      }
      res.end()
    }
    more()
  })
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port])}
groups:
  g:
    allow:
      - host: origin.test
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
  )
  const sock = connect(pc.proxyPort, '127.0.0.1')
  t.teardown(() => sock.destroy())
  await once(sock, 'connect')
  sock.write(
    `GET http://origin.test:${origin.port}/big HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n` +
      `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
  )
  const { head, rest } = await readHead(sock, true)
  t.match(head, /^HTTP\/1\.1 200 /)
  // The client reads nothing for a while: the origin must be held back well short of the whole body
  // (loopback socket buffers hold a few MiB each; without backpressure the proxy takes all 96 MiB).
  await new Promise((r) => setTimeout(r, 800))
  const heldAt = written
  t.ok(heldAt < BODY / 2, `origin held back while the client reads nothing (${(heldAt / MiB).toFixed(0)} MiB written)`)
  const hash = createHash('sha256').update(rest)
  let got = rest.length
  sock.on('data', (c: Buffer) => {
    got += c.length
    hash.update(c)
    if (got >= BODY) sock.end()
  })
  sock.resume()
  await once(sock, 'close')
  t.equal(got, BODY, 'every byte arrived once the client read again')
  const expected = createHash('sha256')
  for (let i = 0; i < BODY / MiB; i++) expected.update(CHUNK)
  t.equal(hash.digest('hex'), expected.digest('hex'), 'body intact')
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.path === '/big')
  const close = await pc.waitForRecord((r) => r.event === 'close' && r.id === rec.id)
  t.ok(close.event === 'close' && close.bytes_down >= BODY, 'the close record counts the whole body')
})
