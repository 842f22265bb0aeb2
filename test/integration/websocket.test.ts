import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { ProxyAgent, WebSocket } from 'undici'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { createTestCa } from '../helpers/test-ca.js'
import { startWsOrigin, readFrame, textFrame } from '../helpers/ws-origin.js'
import { basicAuth } from '../helpers/clients.js'
import { until } from '../helpers/poll.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
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
): Promise<{ head: string; socket: Socket; rest: Buffer }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  const host = new URL(url).host
  socket.write(
    `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${basicAuth(user, TOKEN)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
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

t.test('WebSocket through the proxy', async (t) => {
  const ca = createTestCa(t)
  const plain = await startWsOrigin(t)
  const secure = await startWsOrigin(t, ca, ['ws.test'])
  const config = (paths: string) => `upstream:
  ports: [${plain.port}, ${secure.port}]
  resolve: { ws.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(ca.certFile)}
groups:
  g:
    allow:
      - host: ws.test
        paths: ${paths}
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`
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
