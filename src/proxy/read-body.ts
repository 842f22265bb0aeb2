import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'

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
}

/**
 * The whole body in a buffer of its own (so it can be moved to a worker and back), or why not. Past
 * `maxBytes` it stops keeping and drains the rest (drainBody) before saying 'too_large': the caller
 * refuses the request, and the refusal must reach a client that is still uploading.
 */
/** A body past the cap, kept to go on as it came (audit mode): what was read, then the rest of the stream. */
export interface Overflow {
  readonly kind: 'overflow'
  readonly stream: Readable
  /** Bytes read from the client so far. */
  readonly bytesRead: number
}

export function readBounded(req: BodySource, maxBytes: number): Promise<Buffer | 'too_large' | 'cut_off'>
export function readBounded(
  req: BodySource,
  maxBytes: number,
  /** Past the cap, hand back the body as a stream (read part, then the rest) instead of draining it. */
  keepOverflow: boolean,
): Promise<Buffer | 'too_large' | 'cut_off' | Overflow>
export async function readBounded(
  req: BodySource,
  maxBytes: number,
  keepOverflow = false,
): Promise<Buffer | 'too_large' | 'cut_off' | Overflow> {
  const chunks: Buffer[] = []
  let size = 0
  // Not a plain `for await`: leaving it destroys an IncomingMessage, and with it the socket the
  // refusal is to be written on (see push-gate.ts holdBody).
  const stream = req instanceof Readable ? req : null
  try {
    const chunksOf = stream?.iterator({ destroyOnReturn: false }) ?? req
    for await (const chunk of chunksOf) {
      const bytes = chunk as Buffer
      size += bytes.length
      if (size > maxBytes) {
        if (keepOverflow) chunks.push(bytes)
        break
      }
      chunks.push(bytes)
    }
  } catch {
    return 'cut_off'
  }
  if (size > maxBytes) {
    if (keepOverflow && stream !== null)
      return { kind: 'overflow', stream: heldThenRest(chunks, stream), bytesRead: size }
    // Out of the loop first: the iterator lets go of the stream before it flows into the drain.
    if (stream !== null) await drainBody(stream)
    return 'too_large'
  }
  if (!req.complete) return 'cut_off'
  const body = Buffer.allocUnsafeSlow(size)
  let at = 0
  for (const c of chunks) at += c.copy(body, at)
  return body
}

function heldThenRest(held: readonly Buffer[], rest: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield* held
      yield* rest.iterator({ destroyOnReturn: false })
    })(),
    { objectMode: false },
  )
}

/** After a refusal of a body too large to hold, the rest is read and dropped within these bounds. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024
const DRAIN_MAX_MS = 10_000

/**
 * Read and drop what is left of a body, within bounds, so the client is not cut off mid-upload: a
 * connection closed with unread bytes is reset, and a client still sending loses the answer with it
 * (curl saw `100` and no 403; git printed `Broken pipe` instead of its refusal).
 */
export function drainBody(req: Readable): Promise<void> {
  return new Promise((resolve) => {
    let bytes = 0
    const done = (): void => {
      clearTimeout(timer)
      req.removeListener('data', onData)
      req.removeListener('end', done)
      req.removeListener('close', done)
      resolve()
    }
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length
      if (bytes > DRAIN_MAX_BYTES) done()
    }
    const timer = setTimeout(done, DRAIN_MAX_MS)
    req.on('data', onData)
    req.once('end', done)
    req.once('close', done)
    req.resume()
  })
}
