/**
 * Raw clients of the bench kit: free ports, CONNECT tunnels, TLS handshakes and single requests on
 * sockets, each bounded in time. Loopback only: every socket here dials 127.0.0.1.
 */
import { once } from 'node:events'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
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

/** Free loopback ports, picked by listening on port 0 (the proxy's log may be silenced, so its ports are chosen here). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createNetServer().listen(0, LOOPBACK))
  await Promise.all(servers.map((s) => once(s, 'listening')))
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  return ports
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

/** Resolve with the first `\r\n\r\n`-terminated head (and anything after it) read from socket. */
function readHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const onData = (c: Buffer): void => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      const i = buf.indexOf('\r\n\r\n')
      if (i >= 0) {
        cleanup()
        socket.pause()
        resolve({ head: buf.subarray(0, i).toString('latin1'), rest: buf.subarray(i + 4) })
      }
    }
    const onEnd = (): void => {
      cleanup()
      reject(new Error('closed before a response head'))
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(e)
    }
    const cleanup = (): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onError)
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onError)
  })
}

/** TCP to the proxy, CONNECT authority, 200 read. The returned socket is paused, ready for TLS. */
export async function openTunnel(proxyPort: number, authority: string, timeoutMs = 10_000): Promise<Socket> {
  const socket = netConnect(proxyPort, LOOPBACK)
  socket.setNoDelay(true)
  return within(
    (async () => {
      await once(socket, 'connect')
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${PROXY_AUTH}\r\n\r\n`)
      const { head } = await readHead(socket)
      if (!/^HTTP\/1\.1 200 /.test(head)) throw new Error(`CONNECT ${authority}: ${head.split('\r\n')[0] ?? ''}`)
      return socket
    })(),
    timeoutMs,
    `CONNECT ${authority}`,
    () => socket.destroy(),
  )
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
  const { rest } = await readHead(sock)
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
