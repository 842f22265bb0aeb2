import { once } from 'node:events'
import { connect } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { basicAuth } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { run } from '../helpers/spawn.js'
import { until } from '../helpers/poll.js'
import { ROOT } from '../helpers/spawn-portcullis.js'
import { LINGER_MAX_MS } from '../../src/proxy/linger.js'
import type { CloseRecord } from '../../src/telemetry/events.js'

/**
 * SPEC §2: a request refused from its head while its upload is still coming is answered and closed
 * without the upload being read for use. The close lingers (reading and dropping what the client still
 * sends, bounded), so a client busy uploading gets the refusal rather than EPIPE or a reset.
 */

const UPLOAD_BYTES = 8 * 1024 * 1024
/** Each shape a few times: without the lingering close, most of these lost the 403 to a reset. */
const ROUNDS = 3

/**
 * undici's fetch through a ProxyAgent, in a process of its own (in the proxy's own event loop the
 * client's writes and the proxy's close take turns, and the race that loses the answer never shows):
 * each upload on a new agent, printing `status decision` or the error's code per line.
 */
const CLIENT = `
import { readFileSync } from 'node:fs'
import { ProxyAgent, fetch } from 'undici'
const [proxy, token, caFile, tunnel, url, bytes, rounds] = process.argv.slice(1)
const body = Buffer.alloc(Number(bytes), 120)
for (let i = 0; i < Number(rounds); i++) {
  const agent = new ProxyAgent({ uri: proxy, token, proxyTunnel: tunnel === 'tunnel', requestTls: { ca: readFileSync(caFile) } })
  try {
    const r = await fetch(url, { method: 'POST', body, dispatcher: agent })
    await r.text()
    console.log(r.status + ' ' + r.headers.get('x-portcullis-decision'))
  } catch (e) {
    console.log(String(e.cause?.code ?? e.message))
  }
  await agent.close().catch(() => {})
}
`

t.test('a refused multi-MB upload still gets its answer', async (t) => {
  const origin = await startHttpOrigin(t)
  const tls = await startHttpsOrigin(t, ['origin.test'])
  // The agent has a path rule, so it trusts the proxy's CA (intercepted), and denied CONNECTs are explained in TLS.
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port, tls.port], { caFile: tls.ca.certFile, paths: ['/public/**'] }),
  )
  const token = basicAuth('ci', TOKEN)
  const uploads = async (url: string, tunnel: boolean): Promise<string[]> => {
    const args = [pc.proxyUrl, token, join(pc.dir, 'ca.pem'), tunnel ? 'tunnel' : 'plain', url, UPLOAD_BYTES, ROUNDS]
    const r = await run(process.execPath, ['--input-type=module', '-e', CLIENT, ...args.map(String)], {
      cwd: ROOT,
      timeoutMs: 60_000,
    })
    return r.stdout.trim().split('\n')
  }
  const shapes: ReadonlyArray<[string, string, boolean, string]> = [
    ['absolute-form to a denied host', `http://other.test:${origin.port}/up`, false, 'denied_no_rule'],
    ['in a cleartext tunnel, a denied path', `http://origin.test:${origin.port}/private/up`, true, 'denied_path'],
    ['intercepted, a denied path', `https://origin.test:${tls.port}/private/up`, true, 'denied_path'],
    ['a denied CONNECT explained in TLS', `https://other.test:${tls.port}/up`, true, 'denied_no_rule'],
  ]
  for (const [name, url, tunnel, decision] of shapes)
    t.test(name, async (t) => {
      t.same(await uploads(url, tunnel), Array(ROUNDS).fill(`403 ${decision}`), 'each round: the 403, not EPIPE')
    })
  t.test('what arrives while lingering is dropped, never read as a next request; the linger is bounded', async (t) => {
    // Half-open, like a client still uploading: it keeps writing after the proxy's FIN.
    const socket = connect({ port: pc.proxyPort, host: '127.0.0.1', allowHalfOpen: true })
    await once(socket, 'connect')
    let closed = false
    socket.on('error', () => undefined)
    socket.once('close', () => (closed = true))
    const got: Buffer[] = []
    socket.on('data', (c: Buffer) => got.push(c))
    const auth = `Proxy-Authorization: ${token}\r\n`
    socket.write(
      `POST http://other.test:${origin.port}/up HTTP/1.1\r\nHost: other.test\r\n${auth}Content-Length: 1000\r\n\r\n`,
    )
    t.ok(await until(() => Buffer.concat(got).includes('\r\n\r\n'), 5000), 'the refusal came')
    // The rest of the body, then a request that would pass: the proxy has stopped parsing.
    const next = `GET http://origin.test:${origin.port}/after-linger HTTP/1.1\r\nHost: origin.test\r\n${auth}\r\n`
    socket.write(`${'x'.repeat(1000)}${next}`)
    // Then more, and more: past LINGER_MAX_MS the proxy closes, and a write is refused (reset).
    const startedAt = Date.now()
    t.ok(
      await until(() => (closed || socket.write('x'), closed), LINGER_MAX_MS + 3000, 100),
      'closed once the linger bound passed',
    )
    t.ok(Date.now() - startedAt >= LINGER_MAX_MS - 500, 'not before it')
    socket.destroy()
    const answer = Buffer.concat(got).toString('latin1')
    t.match(answer, /^HTTP\/1\.1 403 /)
    t.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer')
    t.notOk(
      origin.seen.some((s) => s.url === '/after-linger'),
      'the request behind it never went upstream',
    )
  })
  t.test('nothing of a refused upload reached an origin', async (t) => {
    t.notOk(
      [...origin.seen, ...tls.seen].some((s) => s.method === 'POST'),
      'no POST reached an origin',
    )
  })
  t.test('what the lingering close drops is not counted to bytes_per_day', async (t) => {
    const closes = pc.records().filter((r): r is CloseRecord => r.event === 'close' && r.host === 'origin.test')
    t.ok(closes.length >= 2 * ROUNDS, 'the tunnels closed')
    for (const c of closes) t.ok(c.bytes_up < UPLOAD_BYTES / 4, `counted ${c.bytes_up} bytes up, not the upload`)
  })
})
