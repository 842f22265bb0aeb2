import type { OnReadOpts, Socket } from 'node:net'
import type { Credential } from '../identity/authenticate.js'
import type { ProxyDeps } from './deps.js'
import { openConnection, type Connection, type Trackable } from './connection.js'
import type { TrackedConn } from './tracker.js'

/** What the tracker needs of a tunnel (tracker.ts), and what its close record names. */
export interface TunnelInfo extends Pick<
  TrackedConn,
  'agent' | 'host' | 'port' | 'address' | 'pinned' | 'srcIp' | 'credential'
> {
  readonly id: string
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

/**
 * The relay's state in one object with its methods on the prototype: an idle tunnel holds it for
 * hours, and closures would be memory per tunnel (bench e). Only `onread` needs two closures: node
 * calls its buffer function without the socket as `this`.
 */
class Relay implements UpstreamRelay {
  private own: Buffer | null = null
  private client: Socket | null = null
  private upstream: Socket | null = null
  private early: Buffer | null = null
  // `own` is still referenced by a write the client has not taken: reading waits for 'drain'. Should
  // anything else resume upstream meanwhile, the next read goes to a new buffer instead (nextBuffer()).
  private ownAwaitsDrain = false
  readonly onread: OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (nread: number, view: Uint8Array) => this.relay(nread, view),
  }

  resume(): void {
    this.ownAwaitsDrain = false
    this.upstream?.resume()
  }

  private nextBuffer(): Buffer {
    if (this.ownAwaitsDrain && this.own !== null) {
      this.own = Buffer.allocUnsafeSlow(this.own.length)
      this.ownAwaitsDrain = false
    }
    return this.own ?? sharedReadBuffer
  }

  private relay(nread: number, view: Uint8Array): boolean {
    const client = this.client
    const inShared = this.own === null
    if (client === null) {
      // Not relaying yet: keep a copy and stop reading until start().
      const copy = Buffer.from(view.subarray(0, nread))
      this.early = this.early === null ? copy : Buffer.concat([this.early, copy])
      return false
    }
    if (!client.writable) {
      // The client is gone: nothing read from now on can be delivered.
      this.upstream?.destroy()
      return false
    }
    // Out of the shared buffer a copy (the next read, any tunnel's, reuses it); an own buffer is written in place.
    const more = client.write(
      inShared ? Buffer.from(view.subarray(0, nread)) : Buffer.from(view.buffer, view.byteOffset, nread),
    )
    const own = this.own
    if (own === null) {
      if (nread === SHARED_READ_BYTES) this.own = Buffer.allocUnsafeSlow(MIN_OWN_READ_BYTES)
    } else if (client.writableLength > 0 && more) this.own = Buffer.allocUnsafeSlow(own.length)
    else if (nread === own.length && own.length < MAX_OWN_READ_BYTES) this.own = Buffer.allocUnsafeSlow(own.length * 4)
    else if (nread <= own.length / 8)
      this.own = own.length > MIN_OWN_READ_BYTES ? Buffer.allocUnsafeSlow(own.length / 4) : null
    if (more) return true
    this.ownAwaitsDrain = this.own !== null && this.own.buffer === view.buffer
    client.once('drain', resumeRelay)
    return false
  }

  start(client: Socket, upstream: Socket): void {
    this.client = client
    this.upstream = upstream
    ;(client as RelaySocket)[kRelay] = this
    ;(upstream as RelaySocket)[kRelay] = this
    if (this.early !== null) {
      client.write(this.early)
      this.early = null
    }
    upstream.on('end', endRelayClient)
    upstream.resume()
  }

  /** Upstream's FIN ends the client's side (end() on an already ended side would be an error). */
  endClient(): void {
    if (this.client !== null && !this.client.writableEnded) this.client.end()
  }
}

export function createUpstreamRelay(): UpstreamRelay {
  return new Relay()
}

const kRelay = Symbol('portcullis.relay')
type RelaySocket = Socket & { [kRelay]?: Relay }

/** The client took a write the relay waited for (one listener function for every tunnel). */
function resumeRelay(this: RelaySocket): void {
  this[kRelay]?.resume()
}
function endRelayClient(this: RelaySocket): void {
  this[kRelay]?.endClient()
}

const kSplice = Symbol('portcullis.splice')
type SpliceSocket = Socket & { [kSplice]?: Splice }

/**
 * One spliced tunnel: what the tracker holds (a reload, a revocation or the bytes sweep closes it),
 * both sockets and its connection. The sockets' listeners are the module's functions below, shared
 * by every tunnel: each finds its tunnel under kSplice on the socket that emitted.
 */
class Splice implements Trackable {
  readonly via = 'tunnel' as const
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly address: string
  readonly pinned: boolean
  readonly srcIp: string
  readonly credential: Credential
  connection?: Connection
  /** Sides still open; the first to close gives the other 5 s to flush. */
  open = 2

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    info: TunnelInfo,
  ) {
    this.agent = info.agent
    this.host = info.host
    this.port = info.port
    this.address = info.address
    this.pinned = info.pinned
    this.srcIp = info.srcIp
    this.credential = info.credential
  }

  close(): void {
    this.client.destroy()
    this.upstream.destroy()
  }
}

function spliceOf(socket: SpliceSocket): Splice {
  return socket[kSplice] as Splice
}
function closeSplice(this: SpliceSocket): void {
  spliceOf(this).close()
}
function closeLater(splice: Splice): void {
  splice.close()
}
function onSideClose(this: SpliceSocket): void {
  const splice = spliceOf(this)
  splice.open -= 1
  if (splice.open === 1) return void setTimeout(closeLater, 5000, splice).unref()
  splice.connection?.finish()
}
function onClientData(this: SpliceSocket, chunk: Buffer): void {
  // Upstream may have ended (its FIN ends our side too): the client's last bytes (a TLS close_notify)
  // have nowhere to go, and writing them would only make an EPIPE error, stack trace and all.
  const { upstream } = spliceOf(this)
  if (!upstream.writable) return
  if (!upstream.write(chunk)) this.pause()
}
function onUpstreamDrain(this: SpliceSocket): void {
  spliceOf(this).client.resume()
}
// end() on an already ended side makes an ERR_STREAM_ALREADY_FINISHED error; skip it.
function onClientEnd(this: SpliceSocket): void {
  const { upstream } = spliceOf(this)
  if (!upstream.writableEnded) upstream.end()
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
  const splice = new Splice(client, upstream, info)
  ;(client as SpliceSocket)[kSplice] = splice
  ;(upstream as SpliceSocket)[kSplice] = splice
  openConnection(deps, {
    facts: info,
    credential: info.credential,
    startedAtMs: info.startedAtMs,
    // What the upstream socket wrote went up; what it read came down.
    bytes: { socket: upstream, upIsRead: false },
    track: splice,
  })
  client.on('close', onSideClose)
  upstream.on('close', onSideClose)
  client.on('error', closeSplice)
  upstream.on('error', closeSplice)
  client.setTimeout(idleTimeoutMs)
  client.on('timeout', closeSplice)
  client.setNoDelay(true)
  if (first.length > 0) upstream.write(first)
  client.on('data', onClientData)
  upstream.on('drain', onUpstreamDrain)
  client.on('end', onClientEnd)
  relay.start(client, upstream)
  client.resume()
}
