/**
 * Raw clients of the bench kit: CONNECT tunnels, TLS handshakes and single requests on sockets,
 * each bounded in time. The tunnel client and the head reader are the tests' own
 * (test/helpers/tunnel.ts). Loopback only: every socket here dials 127.0.0.1.
 */
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { connectTunnel, readHead } from '../../test/helpers/tunnel.js'
import { LOOPBACK, PROXY_AUTH } from './config.js'

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Reject after ms unless p settles first; `onTimeout` cleans up (destroys sockets). */
export function within<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.()
      reject(new Error(`${what}: no answer within ${ms} ms`))
    }, ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

export async function accepts(port: number): Promise<boolean> {
  const s = netConnect(port, LOOPBACK)
  try {
    await Promise.race([once(s, 'connect'), sleep(500).then(() => Promise.reject(new Error('timeout')))])
    return true
  } catch {
    return false
  } finally {
    s.destroy()
  }
}

/** TCP to the proxy, CONNECT authority as the bench agent, 200 read. The returned socket is paused, ready for TLS. */
export async function openTunnel(proxyPort: number, authority: string, timeoutMs = 10_000): Promise<Socket> {
  const { socket, head } = await connectTunnel(proxyPort, authority, PROXY_AUTH, {
    timeoutMs,
    pause: true,
    noDelay: true,
  })
  if (/^HTTP\/1\.1 200 /.test(head)) return socket
  socket.destroy()
  throw new Error(`CONNECT ${authority}: ${head.split('\r\n')[0] ?? ''}`)
}

export interface TlsTarget {
  readonly servername: string
  readonly ca: string
}

/** TLS client handshake over `socket` (a tunnel) or to 127.0.0.1:port (direct). */
export async function tlsHandshake(via: Socket | number, t: TlsTarget, timeoutMs = 10_000): Promise<TLSSocket> {
  const tls =
    typeof via === 'number'
      ? tlsConnect({ host: LOOPBACK, port: via, servername: t.servername, ca: t.ca })
      : tlsConnect({ socket: via, servername: t.servername, ca: t.ca })
  tls.setNoDelay?.(true)
  return within(
    (async () => {
      await once(tls, 'secureConnect')
      return tls
    })(),
    timeoutMs,
    `TLS ${t.servername}`,
    () => tls.destroy(),
  )
}

/** One `GET path` with Connection: close; resolves with the body length when the server closes. */
export async function getAndClose(sock: TLSSocket, host: string, path = '/', timeoutMs = 10_000): Promise<number> {
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  return within(
    new Promise<number>((resolve, reject) => {
      let n = 0
      sock.on('data', (c: Buffer) => (n += c.length))
      sock.once('end', () => resolve(n))
      sock.once('error', reject)
    }),
    timeoutMs,
    `GET ${host}${path}`,
    () => sock.destroy(),
  ).finally(() => sock.destroy())
}

/** GET /bulk?bytes=n on an open TLS socket; resolves with body bytes and seconds from request to last byte. */
export async function bulkGet(
  sock: TLSSocket,
  host: string,
  n: number,
  timeoutMs: number,
): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint()
  sock.write(`GET /bulk?bytes=${n} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  const { rest } = await readHead(sock, true)
  sock.resume()
  return within(
    new Promise<{ bytes: number; seconds: number }>((resolve, reject) => {
      let got = rest.length
      const done = (): void => resolve({ bytes: got, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })
      if (got >= n) return done()
      const onData = (c: Buffer): void => {
        got += c.length
        if (got >= n) {
          sock.off('data', onData)
          done()
        }
      }
      sock.on('data', onData)
      sock.once('end', () => (got >= n ? done() : reject(new Error(`bulk: ended after ${got} of ${n} bytes`))))
      sock.once('error', reject)
    }),
    timeoutMs,
    'bulk GET',
    () => sock.destroy(),
  ).finally(() => sock.destroy())
}
