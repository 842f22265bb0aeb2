/**
 * A yardstick: a straightforward Node forward proxy on this machine.
 * CONNECT → net.connect + pipeline both ways (no auth, no policy, no SNI
 * check, no logging); absolute-form HTTP → http.request on a keep-alive agent,
 * piped. CONNECT to mitm.test (with an origin CA file given) is intercepted the
 * straightforward way: a TLSSocket with one leaf made at start, node:http inside,
 * https.request on a keep-alive agent that verifies the origin, piped back.
 * Dials 127.0.0.1 only, whatever the request names.
 *
 *   node bench/bare-proxy.ts [origin CA file]   (prints {"port":…,"pid":…,"caFile":…}; exits on SIGTERM or stdin end)
 */
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import { createSecureContext, rootCertificates, TLSSocket, type SecureContext } from 'node:tls'
import { ensureCa, loadCa } from '../src/tls/ca.js'
import { createLeafCertCache } from '../src/tls/leaf-certs.js'
import { serveUntilStopped } from './lib/child.js'

const MITM_HOST = 'mitm.test'
const originCaFile = process.argv[2]
// The certificate is made once at start with Portcullis's own CA code: what is measured is the data path.
const caDir = mkdtempSync(join(tmpdir(), 'pc-bench-bare-ca-'))
let mitmContext: SecureContext | null = null
if (originCaFile) {
  await ensureCa(join(caDir, 'ca.pem'), join(caDir, 'ca-key.pem'))
  mitmContext = createLeafCertCache(await loadCa(join(caDir, 'ca.pem'), join(caDir, 'ca-key.pem'))).get(MITM_HOST)
}
// Roots as one SecureContext: an agent given `ca` builds its pool key from the PEM text on every request.
const httpsAgent = new HttpsAgent({
  keepAlive: true,
  maxSockets: 512,
  maxFreeSockets: 64,
  scheduling: 'lifo',
  secureContext: createSecureContext({
    ca: originCaFile ? [...rootCertificates, readFileSync(originCaFile, 'utf8')] : [...rootCertificates],
  }),
})

const agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' })
const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const m = /^http:\/\/[^/:]+:(\d+)(\/.*)?$/.exec(req.url ?? '')
  if (!m) return void res.writeHead(400).end()
  const headers = { ...req.headers }
  delete headers['proxy-authorization']
  delete headers['proxy-connection']
  const up = request(
    { host: '127.0.0.1', port: Number(m[1]), path: m[2] ?? '/', method: req.method, headers, agent },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      pipeline(upRes, res, () => undefined)
    },
  )
  up.on('error', () => res.destroy())
  pipeline(req, up, () => undefined)
})

/** Inside an intercepted CONNECT: each request goes to the origin over TLS, SNI and name mitm.test. */
const originPort = new WeakMap<Socket, number>()
const inner = createServer({ keepAliveTimeout: 120_000 }, (req: IncomingMessage, res: ServerResponse): void => {
  const port = originPort.get(req.socket) ?? 0
  const up = httpsRequest(
    {
      host: '127.0.0.1',
      servername: MITM_HOST,
      port,
      path: req.url ?? '/',
      method: req.method,
      headers: req.headers,
      agent: httpsAgent,
    },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      pipeline(upRes, res, () => undefined)
    },
  )
  up.on('error', () => res.destroy())
  pipeline(req, up, () => undefined)
})

server.on('connect', (req, client: Socket, head: Buffer) => {
  const port = Number(/:(\d+)$/.exec(req.url ?? '')?.[1] ?? 0)
  if (mitmContext !== null && (req.url ?? '').startsWith(`${MITM_HOST}:`)) {
    client.write('HTTP/1.1 200 Connection established\r\n\r\n')
    if (head.length > 0) client.unshift(head)
    const tls = new TLSSocket(client, { isServer: true, secureContext: mitmContext, ALPNProtocols: ['http/1.1'] })
    tls.on('error', () => tls.destroy())
    client.on('error', () => tls.destroy())
    originPort.set(tls, port)
    inner.emit('connection', tls)
    return
  }
  const up = connect({ host: '127.0.0.1', port, noDelay: true }, () => {
    client.write('HTTP/1.1 200 Connection established\r\n\r\n')
    if (head.length > 0) up.write(head)
    pipeline(client, up, () => client.destroy())
    pipeline(up, client, () => up.destroy())
  })
  up.on('error', () => client.destroy())
  client.on('error', () => up.destroy())
  client.setNoDelay(true)
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
serveUntilStopped(
  {
    port: (server.address() as AddressInfo).port,
    pid: process.pid,
    caFile: mitmContext ? join(caDir, 'ca.pem') : null,
  },
  () => {
    server.closeAllConnections()
    server.close()
  },
)
