import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { basicAuth } from './clients.js'
import { TOKEN } from './config.js'

/**
 * The raw tunnel client the tests and the bench (bench/lib/clients.ts) share: a CONNECT written by
 * hand on a socket, and the answer's head read off it.
 */

/**
 * Resolve with the first `\r\n\r\n`-terminated head read from `socket` (without the blank line) and
 * the bytes read after it; reject when the peer ends or errs first. With `pause`, the socket is
 * paused at once, so no later byte is lost before the caller reads on (a TLS handshake next).
 */
export function readHead(socket: Duplex, pause = false): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const onData = (c: Buffer): void => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      const i = buf.indexOf('\r\n\r\n')
      if (i < 0) return
      cleanup()
      if (pause) socket.pause()
      resolve({ head: buf.subarray(0, i).toString('latin1'), rest: buf.subarray(i + 4) })
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

export interface TunnelOptions {
  /** The socket is destroyed and the call rejects when no head arrives in time. */
  readonly timeoutMs?: number
  /** Pause the socket after the head (see readHead). */
  readonly pause?: boolean
  readonly noDelay?: boolean
}

/** TCP to the proxy on 127.0.0.1:port, `CONNECT authority` with this Proxy-Authorization; the answer's head, whatever its status. */
export async function connectTunnel(
  port: number,
  authority: string,
  proxyAuthorization: string,
  opts: TunnelOptions = {},
): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const socket = connect(port, '127.0.0.1')
  if (opts.noDelay) socket.setNoDelay(true)
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`CONNECT ${authority}: no answer within ${timeoutMs} ms`))
    }, timeoutMs)
  })
  const answered = (async () => {
    await once(socket, 'connect')
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${proxyAuthorization}\r\n\r\n`,
    )
    return { socket, ...(await readHead(socket, opts.pause)) }
  })()
  answered.catch(() => undefined) // a late failure after the timeout is not an unhandled rejection
  return Promise.race([answered, timedOut]).finally(() => clearTimeout(timer))
}

/**
 * Open a CONNECT tunnel by hand as agent `user` and return the socket after the proxy's answer
 * head; `head` is all text read so far (the head, and any body that came with it).
 */
export async function openTunnel(
  port: number,
  authority: string,
  user = 'ci',
  token = TOKEN,
): Promise<{ socket: Socket; head: string }> {
  const { socket, head, rest } = await connectTunnel(port, authority, basicAuth(user, token))
  socket.on('error', () => undefined)
  return { socket, head: `${head}\r\n\r\n${rest.toString('latin1')}` }
}
