/**
 * Benchmark origin, run as its own process so its CPU is not the load
 * generator's: an HTTP and an HTTPS server on 127.0.0.1:0 (keep-alive, tiny
 * body), and `/bulk?bytes=N` streaming N bytes from a preallocated buffer.
 * The HTTPS certificates come from a throwaway CA written to <outDir>; one
 * leaf per name, chosen by SNI.
 *
 *   node --import tsx bench/origin.ts <outDir> [name ...]
 *
 * Prints one JSON line `{"httpPort":…,"httpsPort":…,"caFile":…}` when ready;
 * exits on SIGTERM or when its stdin closes (the parent went away).
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createSecureContext, type SecureContext } from 'node:tls'
import forge from 'node-forge'
import { createCaMaterial, type CertificateAuthority } from '../src/tls/ca.js'
import { mintLeaf } from '../src/tls/leaf-certs.js'
import { serveUntilStopped } from './lib/child.js'

const MAX_BULK = 1024 * 1024 * 1024
const CHUNK = Buffer.alloc(1024 * 1024, 0x61)
const TINY = Buffer.from('ok\n')

const kConn = Symbol('bench.conn')
let connections = 0

/** Which origin connection served this request: lets a client see whether the proxy reuses upstream connections. */
function connectionId(req: IncomingMessage): string {
  const s = req.socket as IncomingMessage['socket'] & { [kConn]?: number }
  s[kConn] ??= ++connections
  return String(s[kConn])
}

function handler(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/'
  res.setHeader('x-origin-conn', connectionId(req))
  if (url.startsWith('/bulk')) {
    const n = Math.min(Number(new URL(url, 'http://x').searchParams.get('bytes') ?? 0) || 0, MAX_BULK)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) })
    let left = n
    const pump = (): void => {
      while (left > 0) {
        const len = Math.min(left, CHUNK.length)
        left -= len
        if (!res.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) {
          res.once('drain', pump)
          return
        }
      }
      res.end()
    }
    res.on('close', () => (left = 0))
    pump()
    return
  }
  // Drain any request body, answer a tiny body.
  req.resume()
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(TINY.length) })
  res.end(TINY)
}

function issue(
  names: readonly string[],
  outDir: string,
): { caFile: string; contexts: Map<string, SecureContext>; fallback: { key: string; cert: string } } {
  const { certPem, keyPem } = createCaMaterial('Portcullis bench origin CA')
  const caFile = join(outDir, 'origin-ca.pem')
  writeFileSync(caFile, certPem)
  const caCert = forge.pki.certificateFromPem(certPem)
  const ski = (caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string }).subjectKeyIdentifier
  const ca: CertificateAuthority = { certPem, keyPem, cert: caCert, fingerprint256: '', subjectKeyId: ski }
  const caKey = createPrivateKey(keyPem)
  // One key for every leaf; one certificate per name (mintLeaf names one host).
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const pub = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
  const contexts = new Map<string, SecureContext>()
  let fallback: { key: string; cert: string } | null = null
  for (const name of names) {
    const cert = mintLeaf(name, pub, ca, caKey, new Date())
    contexts.set(name, createSecureContext({ key, cert }))
    fallback ??= { key, cert }
  }
  if (!fallback) throw new Error('origin: no names')
  return { caFile, contexts, fallback }
}

async function main(): Promise<void> {
  const outDir = process.argv[2]
  if (!outDir) throw new Error('usage: origin.ts <outDir> [name ...]')
  mkdirSync(outDir, { recursive: true })
  const names = process.argv.slice(3)
  const { caFile, contexts, fallback } = issue(names.length > 0 ? names : ['origin.test'], outDir)
  const serverOpts = { keepAliveTimeout: 120_000, headersTimeout: 60_000, requestTimeout: 0 }
  const http = createServer(serverOpts, handler)
  const https = createHttpsServer(
    {
      ...serverOpts,
      ...fallback,
      SNICallback: (name, cb) => cb(null, contexts.get(name) ?? contexts.values().next().value),
    },
    handler,
  )
  http.listen(0, '127.0.0.1')
  https.listen(0, '127.0.0.1')
  await Promise.all([once(http, 'listening'), once(https, 'listening')])
  serveUntilStopped(
    {
      httpPort: (http.address() as AddressInfo).port,
      httpsPort: (https.address() as AddressInfo).port,
      caFile,
      pid: process.pid,
    },
    () => {
      http.closeAllConnections()
      https.closeAllConnections()
      http.close()
      https.close()
    },
  )
}

main().catch((err: unknown) => {
  process.stderr.write(`bench origin failed: ${String(err)}\n`)
  process.exit(1)
})
