import type { IncomingMessage } from 'node:http'

/**
 * While the proxy reads a request body itself (inspection, API writes, pushes), nothing upstream is
 * waiting to time a silent client out: the connection is closed after `idleMs` without a byte (the
 * socket's own idle timer, reset by every read). Returns the function that lifts the guard once the
 * body is read.
 */
export function guardIdle(req: IncomingMessage, idleMs: number): () => void {
  const socket = req.socket
  const onTimeout = (): void => void socket.destroy()
  socket.setTimeout(idleMs, onTimeout)
  return () => {
    socket.setTimeout(0)
    socket.removeListener('timeout', onTimeout)
  }
}

/** What a body is read from: an IncomingMessage, or a body already read and replayed. */
export interface BodySource extends AsyncIterable<unknown> {
  /** True once the whole message arrived (false when the client stopped early). */
  readonly complete: boolean
  /** A stream's own iterator (IncomingMessage): one that leaves it open when reading stops early. */
  iterator?(options: { destroyOnReturn: boolean }): AsyncIterable<unknown>
}

/**
 * The whole body in a buffer of its own (so it can be moved to a worker and back), or why not. Stops
 * reading past `maxBytes`: the caller refuses the request and closes the connection.
 */
export async function readBounded(req: BodySource, maxBytes: number): Promise<Buffer | 'too_large' | 'cut_off'> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    // Not a plain `for await`: leaving it destroys an IncomingMessage, and with it the socket the
    // refusal is to be written on (see push-gate.ts holdBody).
    const chunksOf = req.iterator?.({ destroyOnReturn: false }) ?? req
    for await (const chunk of chunksOf) {
      const bytes = chunk as Buffer
      size += bytes.length
      if (size > maxBytes) return 'too_large'
      chunks.push(bytes)
    }
  } catch {
    return 'cut_off'
  }
  if (!req.complete) return 'cut_off'
  const body = Buffer.allocUnsafeSlow(size)
  let at = 0
  for (const c of chunks) at += c.copy(body, at)
  return body
}
