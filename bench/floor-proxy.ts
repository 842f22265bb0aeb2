/**
 * A floor for the plain-HTTP row (d): what forwarding an absolute-form GET costs in Node with the
 * proxy's own upstream client (src/net/http1-client.ts) and nothing else: no auth, no policy, no
 * records, no timers. `net` reads request heads off raw sockets (one request at a time per
 * connection, no bodies); `http` takes them from node:http instead, so the two together price
 * Node's HTTP server. The `net` front also splices CONNECT tunnels (dial, 200, pipe both ways): the
 * floor for the tunnel rows (a, b). Not a proxy anyone should run: it dials 127.0.0.1 whatever the
 * request names, and answers anything it does not handle by closing the connection.
 *
 *   node --import tsx bench/floor-proxy.ts net|http   (prints {"port":…,"pid":…}; exits on SIGTERM or stdin end)
 */
import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { createSecureContext } from 'node:tls'
import { createHttp1Client, type Origin, type ResponseHandler } from '../src/net/http1-client.js'
import { serveUntilStopped } from './lib/child.js'

const front = process.argv[2] === 'http' ? 'http' : 'net'
const client = createHttp1Client({
  connectTimeoutMs: 5000,
  idleTimeoutMs: 60_000,
  responseHeadTimeoutMs: 10_000,
  maxHeadBytes: 16 * 1024,
  secureContext: createSecureContext(),
  connectionsPerPool: 256,
  maxPools: 16,
})
const ABSOLUTE = /^http:\/\/[^/:]+:(\d+)(\/[^ ]*)$/
/** Hop-by-hop fields the floor drops both ways (what any proxy must at least do). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'upgrade'])

function endToEnd(raw: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has((raw[i] as string).toLowerCase())) out.push(raw[i]!, raw[i + 1]!)
  out.push('via', '1.1 floor')
  return out
}

/** The answer collected whole (the origin's answers here are a few bytes), then handed to `done`. */
function collect(done: (status: number, headers: string[], body: Buffer) => void, fail: () => void): ResponseHandler {
  let status = 0
  let headers: string[] = []
  const chunks: Buffer[] = []
  return {
    onHead: (s, h) => {
      status = s
      headers = endToEnd(h)
      return true
    },
    onData: (c) => {
      chunks.push(c)
      return true
    },
    onComplete: () => done(status, headers, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
    onError: fail,
  }
}

const origin = (port: number): Origin => ({ address: '127.0.0.1', port, tls: false, servername: '' })

/** CONNECT behind raw sockets: dial 127.0.0.1:<port>, answer 200, then splice both ways (the b row's floor). */
function tunnel(sock: Socket, target: string, rest: string): void {
  sock.removeAllListeners('data')
  const port = Number(/:(\d+)$/.exec(target)?.[1] ?? 0)
  const up = connect({ host: '127.0.0.1', port })
  up.setNoDelay(true)
  up.on('error', () => sock.destroy())
  sock.on('close', () => up.destroy())
  up.on('close', () => sock.destroy())
  up.once('connect', () => {
    sock.write('HTTP/1.1 200 Connection established\r\n\r\n')
    if (rest.length > 0) up.write(Buffer.from(rest, 'latin1'))
    sock.pipe(up)
    up.pipe(sock)
  })
}

function netFront(): Server {
  return createNetServer((sock: Socket) => {
    sock.setNoDelay(true)
    sock.on('error', () => sock.destroy())
    let pending = ''
    let busy = false
    const next = (): void => {
      const end = busy ? -1 : pending.indexOf('\r\n\r\n')
      if (end < 0) return
      const lines = pending.slice(0, end).split('\r\n')
      pending = pending.slice(end + 4)
      const [method, target] = (lines[0] ?? '').split(' ')
      if (method === 'CONNECT') return void tunnel(sock, target ?? '', pending)
      const m = ABSOLUTE.exec(target ?? '')
      if (m === null || (method !== 'GET' && method !== 'HEAD')) return void sock.destroy()
      const raw: string[] = []
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        raw.push(line.slice(0, colon), line.slice(colon + 1).trim())
      }
      busy = true
      const handler = collect(
        (status, headers, body) => {
          let head = `HTTP/1.1 ${status} -\r\n`
          for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
          sock.cork()
          sock.write(`${head}\r\n`)
          if (method !== 'HEAD') sock.write(body)
          sock.uncork()
          busy = false
          next()
        },
        () => sock.destroy(),
      )
      client.dispatch(origin(Number(m[1])), { method, path: m[2]!, headers: endToEnd(raw), body: null }, handler)
    }
    sock.on('data', (d: Buffer) => {
      pending += d.toString('latin1')
      next()
    })
  })
}

function httpFront(): Server {
  return createHttpServer((req, res) => {
    const m = ABSOLUTE.exec(req.url ?? '')
    if (m === null || (req.method !== 'GET' && req.method !== 'HEAD')) return void req.socket.destroy()
    const handler = collect(
      (status, headers, body) => {
        res.writeHead(status, headers)
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      () => res.destroy(),
    )
    client.dispatch(
      origin(Number(m[1])),
      { method: req.method, path: m[2]!, headers: endToEnd(req.rawHeaders), body: null },
      handler,
    )
  })
}

const server = front === 'http' ? httpFront() : netFront()
server.listen(0, '127.0.0.1')
await once(server, 'listening')
serveUntilStopped({ port: (server.address() as AddressInfo).port, pid: process.pid }, () => {
  server.close()
  client.close()
})
