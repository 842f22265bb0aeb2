import type { OnReadOpts, Socket } from 'node:net'
import type { Credential } from '../identity/authenticate.js'
import type { ProxyDeps } from './deps.js'
import { openConnection } from './connection.js'

export interface TunnelInfo {
  readonly id: string
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly address: string
  readonly pinned: boolean
  readonly srcIp: string
  readonly credential: Credential
  readonly startedAtMs: number
  /** A sandbox credential's id and labels (SPEC §9), for the close record. */
  readonly sandbox?: string
  readonly labels?: Readonly<Record<string, string>>
}

/**
 * Upstream reads go first to one buffer shared by every tunnel and are copied
 * out (as small as node's own reads, and an idle tunnel holds no buffer); a
 * tunnel whose reads fill it gets a buffer of its own, read into in place,
 * ×4 while reads fill it up to the maximum, ÷4 (then back to the shared one)
 * when they use an eighth of it.
 */
const SHARED_READ_BYTES = 16 * 1024
const MIN_OWN_READ_BYTES = 64 * 1024
const MAX_OWN_READ_BYTES = 256 * 1024
const sharedReadBuffer = Buffer.allocUnsafeSlow(SHARED_READ_BYTES)

/**
 * The upstream → client half of a tunnel, the one downloads take. Upstream
 * reads land in a buffer the relay chooses (net.connect's `onread`) and are
 * written straight to the client: no Buffer per read and no Readable
 * machinery (stream.pipeline cost twice the CPU per byte, and 30 KiB per idle
 * tunnel of listeners, closures and AbortControllers: bench c and e). An own
 * buffer is reused while the client takes each write at once, and also after
 * a write the client could not take at once: reading then stops until
 * 'drain', when that write is done with the buffer. Only a pending write
 * small enough that reading goes on (below the client's high-water mark)
 * keeps its buffer and sends the next read to a new one. (A new 256 KiB buffer
 * per read while a slow client lagged was a third of the CPU per GiB.)
 */
export interface UpstreamRelay {
  /** For the upstream socket's `net.connect` options. */
  readonly onread: OnReadOpts
  /** Begin relaying to `client`; what upstream sent before (servers that speak first) is written first. */
  start(client: Socket, upstream: Socket): void
}

export function createUpstreamRelay(): UpstreamRelay {
  let own: Buffer | null = null
  let client: Socket | null = null
  let upstream: Socket | null = null
  let early: Buffer | null = null
  // `own` is still referenced by a write the client has not taken: reading waits for 'drain'. Should
  // anything else resume upstream meanwhile, the next read goes to a new buffer instead (buffer()).
  let ownAwaitsDrain = false
  const resume = (): void => {
    ownAwaitsDrain = false
    upstream?.resume()
  }
  const nextBuffer = (): Buffer => {
    if (ownAwaitsDrain && own !== null) {
      own = Buffer.allocUnsafeSlow(own.length)
      ownAwaitsDrain = false
    }
    return own ?? sharedReadBuffer
  }
  const callback = (nread: number, view: Uint8Array): boolean => {
    const inShared = own === null
    if (client === null) {
      // Not relaying yet: keep a copy and stop reading until start().
      const copy = Buffer.from(view.subarray(0, nread))
      early = early === null ? copy : Buffer.concat([early, copy])
      return false
    }
    if (!client.writable) {
      // The client is gone: nothing read from now on can be delivered.
      upstream?.destroy()
      return false
    }
    // Out of the shared buffer a copy (the next read, any tunnel's, reuses it); an own buffer is written in place.
    const more = client.write(
      inShared ? Buffer.from(view.subarray(0, nread)) : Buffer.from(view.buffer, view.byteOffset, nread),
    )
    if (own === null) {
      if (nread === SHARED_READ_BYTES) own = Buffer.allocUnsafeSlow(MIN_OWN_READ_BYTES)
    } else if (client.writableLength > 0 && more) own = Buffer.allocUnsafeSlow(own.length)
    else if (nread === own.length && own.length < MAX_OWN_READ_BYTES) own = Buffer.allocUnsafeSlow(own.length * 4)
    else if (nread <= own.length / 8)
      own = own.length > MIN_OWN_READ_BYTES ? Buffer.allocUnsafeSlow(own.length / 4) : null
    if (more) return true
    ownAwaitsDrain = own !== null && own.buffer === view.buffer
    client.once('drain', resume)
    return false
  }
  return {
    onread: { buffer: nextBuffer, callback },
    start(c, u) {
      client = c
      upstream = u
      if (early !== null) {
        c.write(early)
        early = null
      }
      u.on('end', () => c.writableEnded || c.end())
      u.resume()
    },
  }
}

/**
 * Splice client and upstream: downloads through the relay, uploads by
 * 'data' → write with pause/resume on backpressure (what pipe() does, without
 * its dozen listeners). No per-byte JS: byte counts come from the upstream
 * socket's own counters. The client socket's idle timer sees both directions
 * (its reads and its writes), so one timer closes a tunnel idle for
 * idleTimeoutMs. An error on either side closes both; a clean close of one
 * side leaves the other 5 s to flush.
 */
export function spliceTunnel(
  client: Socket,
  upstream: Socket,
  relay: UpstreamRelay,
  first: Buffer,
  info: TunnelInfo,
  idleTimeoutMs: number,
  deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>,
): void {
  const close = (): void => {
    client.destroy()
    upstream.destroy()
  }
  const connection = openConnection(deps, {
    facts: info,
    credential: info.credential,
    startedAtMs: info.startedAtMs,
    // What the upstream socket wrote went up; what it read came down.
    moved: () => [upstream.bytesWritten, upstream.bytesRead],
    track: {
      agent: info.agent,
      host: info.host,
      port: info.port,
      via: 'tunnel',
      address: info.address,
      pinned: info.pinned,
      srcIp: info.srcIp,
      credential: info.credential,
      close,
    },
  })
  let open = 2
  const onClose = (): void => {
    open -= 1
    if (open === 1) {
      setTimeout(close, 5000).unref()
      return
    }
    connection.finish()
  }
  // `on`, not `once`: these fire once anyway, and each once() costs a wrapper per tunnel.
  client.on('close', onClose)
  upstream.on('close', onClose)
  client.on('error', close)
  upstream.on('error', close)
  client.setTimeout(idleTimeoutMs)
  client.on('timeout', close)
  client.setNoDelay(true)
  if (first.length > 0) upstream.write(first)
  client.on('data', (chunk: Buffer) => {
    // Upstream may have ended (its FIN ends our side too): the client's last bytes (a TLS close_notify)
    // have nowhere to go, and writing them would only make an EPIPE error, stack trace and all.
    if (!upstream.writable) return
    if (!upstream.write(chunk)) client.pause()
  })
  upstream.on('drain', () => client.resume())
  // end() on an already ended side makes an ERR_STREAM_ALREADY_FINISHED error; skip it.
  client.on('end', () => upstream.writableEnded || upstream.end())
  relay.start(client, upstream)
  client.resume()
}
