import { once } from 'node:events'
import {
  createServer,
  type Server as HttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { SecureContextOptions } from 'node:tls'
import type { Test } from 'tap'
import { createTestCa, type TestCa } from './test-ca.js'

export interface SeenRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export interface Origin {
  readonly port: number
  readonly seen: SeenRequest[]
}

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void

const defaultHandler: OriginHandler = (req, res) => {
  res.writeHead(200, {
    'content-type': 'text/plain',
    'x-origin': 'yes',
    connection: req.headers.connection === 'close' ? 'close' : 'keep-alive',
  })
  res.end(`origin saw ${req.method} ${req.url}\n`)
}

function recordingListener(seen: SeenRequest[], handler: OriginHandler) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      handler(req, res, body)
    })
  }
}

/** A plain HTTP origin on 127.0.0.1:0 that records what reached it. */
export async function startHttpOrigin(
  t: Test,
  handler: OriginHandler = defaultHandler,
  host = '127.0.0.1',
): Promise<Origin> {
  const seen: SeenRequest[] = []
  return { port: await listenForTest(t, createServer(recordingListener(seen, handler)), host), seen }
}

/** `server` listening on `host`:0 until the test ends (its connections cut then); its port. */
async function listenForTest(t: Test, server: HttpServer, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host)
  await once(server, 'listening')
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return (server.address() as AddressInfo).port
}

/** An HTTPS origin on 127.0.0.1:0 with this key and certificate (and TLS options), recording what reached it. */
export async function startHttpsOriginWith(
  t: Test,
  tls: SecureContextOptions,
  handler: OriginHandler = defaultHandler,
): Promise<Origin> {
  const seen: SeenRequest[] = []
  return { port: await listenForTest(t, createHttpsServer(tls, recordingListener(seen, handler))), seen }
}

export interface HttpsOrigin extends Origin {
  readonly ca: TestCa
}

/** An HTTPS origin for `names`, signed by a per-run test CA (pass ca.certFile as upstream.ca_file). */
export async function startHttpsOrigin(
  t: Test,
  names: readonly string[],
  handler: OriginHandler = defaultHandler,
  ca?: TestCa,
): Promise<HttpsOrigin> {
  const testCa = ca ?? createTestCa(t)
  return { ...(await startHttpsOriginWith(t, testCa.issue(names), handler)), ca: testCa }
}
