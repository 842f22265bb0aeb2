import { once } from 'node:events'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth, rawExchange } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, originOnlyYaml } from '../helpers/config.js'

/**
 * A request is decided and forwarded in the turn its head arrived (request-flow.ts handleHttpRequest):
 * a throw anywhere on that path is still the proxy's fail-closed answer. A plain request gets
 * `403 denied_internal_error` and a closed connection, one inside a CONNECT a closed connection;
 * nothing reaches the origin, a request pipelined behind it is never decided, the error is logged,
 * and the proxy keeps serving.
 */

const AUTH = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`

t.test('a throw while a request is decided fails closed, plain or inside a CONNECT', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const url = `http://origin.test:${origin.port}`
  // Every decision observes its latency: a throwing histogram stands for any fault on the data path.
  const metrics = pc.app.metrics as { observeDecisionSeconds(s: number): void }
  const observe = metrics.observeDecisionSeconds.bind(metrics)
  let broken = true
  metrics.observeDecisionSeconds = (s) => {
    if (broken) throw new Error('injected fault')
    observe(s)
  }

  const plain = await rawExchange(
    pc.proxyPort,
    `GET ${url}/a HTTP/1.1\r\nHost: origin.test\r\n${AUTH}\r\nGET ${url}/b HTTP/1.1\r\nHost: origin.test\r\n${AUTH}\r\n`,
  )
  t.ok(plain.closed, 'the connection is closed')
  t.equal(plain.response.match(/^HTTP\/1\.1 /gm)?.length, 1, 'one answer, none for the pipelined request')
  t.match(plain.response, /^HTTP\/1\.1 403 [^]*x-portcullis-decision: denied_internal_error/i)

  // A CONNECT is decided elsewhere; the cleartext request inside it goes through the same flow.
  broken = false
  const { socket } = await openTunnel(pc.proxyPort, `origin.test:${origin.port}`)
  broken = true
  const closing = once(socket, 'close').then(() => true)
  socket.write(`GET /c HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`)
  const closed = await Promise.race([closing, new Promise<false>((resolve) => setTimeout(() => resolve(false), 5000))])
  t.ok(closed, 'the tunnelled connection is closed')

  t.equal(origin.seen.length, 0, 'nothing reached the origin')
  const internal = pc.logLines().filter((l) => l.includes('"PC_ERR_INTERNAL"') && l.includes('injected fault'))
  t.equal(internal.length, 2, 'each failure is logged')

  broken = false
  const after = await rawExchange(
    pc.proxyPort,
    `GET ${url}/d HTTP/1.1\r\nHost: origin.test\r\n${AUTH}Connection: close\r\n\r\n`,
  )
  t.match(after.response, /^HTTP\/1\.1 200 [^]*origin saw GET \/d/, 'the proxy keeps serving')
})
