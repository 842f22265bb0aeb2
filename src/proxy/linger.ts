import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'

/**
 * A lingering close, as Apache (lingering_close) and nginx (lingering_close) do it. A request refused
 * from its head while its upload is still coming is answered with `Connection: close`; closing at once
 * with the client's bytes unread makes the kernel reset the connection, and a client still writing
 * (undici's fetch, curl, git) gets EPIPE or ECONNRESET and loses the answer. Instead, once the answer
 * is written, the proxy half-closes (FIN) and reads and drops what the client still sends, until it
 * closes its side or a bound is reached, then closes. The upload is still not read for use: what is
 * read here never reaches the HTTP parser (no next request is parsed from it), is never forwarded, and
 * is not counted to bytes_per_day (onLinger).
 */

/**
 * How long, and how much, a lingering close reads at most. Long enough for a client on loopback or a
 * LAN to see the answer and stop (it stops writing once it has read a complete answer), short enough
 * that a client that keeps sending holds a descriptor for no more than a moment and costs the proxy
 * no more than a few MiB of reads (each lingering connection still counts against its source's
 * connection limits while it lingers).
 */
export const LINGER_MAX_MS = 2000
export const LINGER_MAX_BYTES = 4 * 1024 * 1024

const kOnLinger = Symbol('portcullis.onLinger')
type LingerSocket = Socket & { [kOnLinger]?: () => void }

/**
 * Is this request's body still on the way (announced, not all read)? Refused now, its connection
 * closes after the answer, lingering (lingerAfterAnswer).
 */
export function bodyStillComing(req: IncomingMessage): boolean {
  return !req.complete && bodyAnnounced(req)
}

/** Does the request's head announce a body (a Content-Length other than 0, or a Transfer-Encoding)? */
export function bodyAnnounced(req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined
}

/**
 * `hook` runs when a lingering close starts on `socket`: a connection whose bytes count towards
 * bytes_per_day is finished there, so what the linger drops is not counted.
 */
export function onLinger(socket: Socket, hook: () => void): void {
  ;(socket as LingerSocket)[kOnLinger] = hook
}

/**
 * When the HTTP server closes this connection after the answer in flight (node's `destroySoon()`, which
 * it calls once a `Connection: close` answer is written), it lingers instead of closing at once.
 */
export function lingerAfterAnswer(socket: Socket): void {
  socket.destroySoon = lingerThenDestroy
}

/** destroySoon's place: end our side, and once the answer is flushed, linger. */
function lingerThenDestroy(this: Socket): void {
  if (this.writable) this.end()
  if (this.writableFinished) linger(this)
  else this.once('finish', lingerOnFinish)
}

function lingerOnFinish(this: Socket): void {
  linger(this)
}

function linger(socket: LingerSocket): void {
  if (socket.destroyed) return
  socket[kOnLinger]?.()
  let left = LINGER_MAX_BYTES
  const drop = (chunk: Buffer): void => {
    left -= chunk.length
    if (left <= 0) socket.destroy()
  }
  // Added first: node's HTTP server stops feeding its parser straight from the socket when a 'data'
  // listener is added; its own listener then goes, so nothing read from here on is parsed.
  socket.on('data', drop)
  for (const listener of socket.listeners('data'))
    if (listener !== drop) socket.removeListener('data', listener as (chunk: Buffer) => void)
  const timer = setTimeout(destroyLingering, LINGER_MAX_MS, socket)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.once('end', destroyLingering.bind(null, socket))
  socket.resume()
}

function destroyLingering(socket: Socket): void {
  socket.destroy()
}
