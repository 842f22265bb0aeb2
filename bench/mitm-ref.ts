/**
 * A yardstick for interception: http-mitm-proxy 1.1.0, the Node MITM proxy the interception target
 * cites ("http-mitm-proxy measures 0.13"), run in the same session as Portcullis. Keep-alive on both
 * sides, no hooks beyond pinning the bench names to 127.0.0.1 (SNI and certificate name stay the
 * name); it trusts the origin's CA. It is a devDependency pinned to an exact version (package.json),
 * so the bench never installs anything itself.
 *
 *   node --import tsx bench/mitm-ref.ts <CA dir> <origin CA file> <name>...   (prints {"port","pid","caFile"})
 */
import { readFileSync } from 'node:fs'
import { Agent as HttpsAgent } from 'node:https'
import { createRequire } from 'node:module'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createSecureContext, rootCertificates } from 'node:tls'
import { serveUntilStopped } from './lib/child.js'

const [dir = '', originCaFile = '', ...names] = process.argv.slice(2)

// Only loopback, ever (DEVELOPERS.md): http-mitm-proxy dials its per-host TLS servers at 0.0.0.0,
// which Linux routes to the loopback interface; say so explicitly, and refuse anything else.
const connect = net.connect.bind(net)
;(net as { connect: typeof net.connect }).connect = ((...args: Parameters<typeof net.connect>) => {
  const opts = args[0] as { host?: string }
  if (typeof opts === 'object' && opts !== null && 'host' in opts) {
    if (opts.host === '0.0.0.0') opts.host = '127.0.0.1'
    if (opts.host !== '127.0.0.1') throw new Error(`mitm-ref: refusing to dial ${String(opts.host)}`)
  }
  return connect(...args)
}) as typeof net.connect

interface Ctx {
  proxyToServerRequestOptions: { host: string; servername?: string }
  proxyToClientResponse: { writeHead(status: number): { end(): void } }
}
interface MitmProxy {
  onError(fn: (ctx: unknown, err: Error) => void): void
  onRequest(fn: (ctx: Ctx, cb: () => void) => void): void
  listen(opts: Record<string, unknown>, cb: () => void): void
  httpServer: net.Server
}
const require = createRequire(import.meta.url)
const { Proxy } = require('http-mitm-proxy') as { Proxy: new () => MitmProxy }

const proxy = new Proxy()
proxy.onError(() => undefined)
proxy.onRequest((ctx, cb) => {
  const o = ctx.proxyToServerRequestOptions
  if (!names.includes(o.host)) return ctx.proxyToClientResponse.writeHead(403).end()
  o.servername = o.host
  o.host = '127.0.0.1'
  cb()
})
// Its own default is `new https.Agent({ keepAlive })` with NODE_EXTRA_CA_CERTS for extra roots; the same roots as
// one SecureContext (an agent given `ca` would build its pool key from ~200 KB of PEM on every request).
const httpsAgent = new HttpsAgent({
  keepAlive: true,
  secureContext: createSecureContext({ ca: [...rootCertificates, readFileSync(originCaFile, 'utf8')] }),
})
const caDir = join(dir, 'ca')
// Its CA is created (node-forge, RSA 2048) before the listener exists.
await new Promise<void>((resolve) =>
  proxy.listen({ host: '127.0.0.1', port: 0, sslCaDir: caDir, keepAlive: true, httpsAgent }, resolve),
)
serveUntilStopped({
  port: (proxy.httpServer.address() as AddressInfo).port,
  pid: process.pid,
  caFile: join(caDir, 'certs', 'ca.pem'),
})
