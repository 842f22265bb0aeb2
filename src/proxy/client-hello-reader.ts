import type { Socket } from 'node:net'
import { CLIENT_HELLO_MAX_BYTES, parseClientHello } from '../tls/client-hello.js'

export type HelloOutcome =
  | { readonly kind: 'hello'; readonly sni: string | null; readonly alpn: readonly string[]; readonly bytes: Buffer }
  | { readonly kind: 'not_tls'; readonly bytes: Buffer }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'closed' }

/**
 * Read just enough of the client's first flight to parse the ClientHello,
 * within timeoutMs. The bytes read are returned so the caller can replay them
 * upstream (tunnel) or into a TLS server (intercept); the socket is left paused.
 */
export function readClientHello(socket: Socket, head: Buffer, timeoutMs: number): Promise<HelloOutcome> {
  return new Promise((resolve) => {
    let buf = head
    let done = false
    const finish = (o: HelloOutcome): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.pause()
      socket.removeListener('data', onData)
      socket.removeListener('close', onClose)
      socket.removeListener('end', onClose)
      resolve(o)
    }
    const examine = (): void => {
      const parsed = parseClientHello(buf)
      if (parsed.kind === 'hello') finish({ kind: 'hello', sni: parsed.sni, alpn: parsed.alpn, bytes: buf })
      else if (parsed.kind === 'not_tls' && partialRequestLine(buf))
        return // plain HTTP split across reads: wait for the line
      else if (parsed.kind === 'not_tls' || buf.length > CLIENT_HELLO_MAX_BYTES) finish({ kind: 'not_tls', bytes: buf })
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      examine()
    }
    const onClose = (): void => finish({ kind: 'closed' })
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs)
    if (buf.length > 0) examine()
    if (done) return
    socket.on('data', onData)
    socket.once('end', onClose)
    socket.once('close', onClose)
    socket.resume()
  })
}

/** The start of an HTTP request line (`GET /pa`) with no line end yet, short enough to keep waiting for. */
function partialRequestLine(buf: Buffer): boolean {
  return (
    buf.length < 2048 &&
    !buf.includes(0x0a) &&
    /^[A-Z]{1,12}(?: [\x21-\x7e]*(?: H[A-Z/0-9.]*)?)?\r?$/.test(buf.toString('latin1'))
  )
}

/** A fatal TLS alert (unrecognized_name) so TLS clients report a clear handshake failure instead of a bare reset. */
export const TLS_ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70])
