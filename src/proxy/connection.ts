import type { Socket } from 'node:net'
import type { Credential } from '../identity/authenticate.js'
import { limiterKey, limiterKeyOf } from '../identity/sandbox-auth.js'
import { buildCloseRecord, type CloseRecord } from '../telemetry/events.js'
import type { ProxyDeps } from './deps.js'
import type { InFlightRequest, TrackedConn } from './tracker.js'

/**
 * A connection the proxy let through (a spliced or intercepted CONNECT, a WebSocket, a plain-HTTP
 * request's exchange): the ONLY writer of close records and of bytes_per_day accounting. While open it
 * is tracked (a reload, a revocation or the bytes sweep can close it, and the sweep counts what it
 * has moved so far); when it ends, finish() counts the rest, writes its one close record and stops
 * tracking it, once, whichever side ended first.
 */
export interface Connection {
  /** Count what moved since the last count towards bytes_per_day (the periodic sweep, tracker.ts). */
  account(): void
  /**
   * The connection ended: the rest counted, one close record, no longer tracked. Idempotent.
   * `failure`: how it failed, if it did (close record fields: `upstream_error` for an answer the
   * upstream cut short after its head went out, `client_error` for a client handshake refused).
   */
  finish(failure?: CloseFailure): void
}

export type CloseFailure = Pick<CloseRecord, 'upstream_error'> | Pick<CloseRecord, 'client_error'>

/** What the close record names. */
export interface ConnectionFacts {
  readonly id: string
  readonly agent: string | null
  readonly host: string
  readonly sandbox?: string | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
}

/**
 * Where the bytes a connection moved are read from: one socket's own counters, read at the end or
 * by the sweep (no per-byte JS). `upIsRead`: the client's socket (its reads went up) or the
 * upstream's (its writes did); `upAt`/`downAt`: the counters when the connection began on a socket
 * that carried other traffic first (a plain request, a WebSocket upgrade).
 */
export interface ByteSource {
  readonly socket: Socket
  readonly upIsRead: boolean
  readonly upAt?: number
  readonly downAt?: number
}

/** What the tracker holds, as the caller gives it: its connection is filled in by openConnection. */
export type Trackable = Omit<TrackedConn, 'connection' | 'request'> & {
  connection?: Connection
  /** Set and cleared by its owner as requests come and go (an intercepted connection's answer in flight). */
  request?: InFlightRequest
}

export interface ConnectionOptions {
  readonly facts: ConnectionFacts
  /** How the agent authenticated (a sandbox's bytes count towards its own budget); else the facts' sandbox says. */
  readonly credential: Credential | undefined
  readonly startedAtMs: number
  /** null: nothing moved (a CONNECT whose client left before a byte flowed). */
  readonly bytes: ByteSource | null
  /**
   * What a reload, a revocation or the sweep needs to close it; null: not tracked (a plain request).
   * The caller's own object is tracked (no copy: an idle tunnel holds it for hours).
   */
  readonly track: Trackable | null
}

/**
 * A class, not closures: an idle tunnel holds its connection for hours, and every closure and
 * context it would hold is memory per tunnel (bench e).
 */
class OpenConnection implements Connection {
  private counted = 0
  private done = false
  private readonly key: string | null

  constructor(
    private readonly deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>,
    private readonly o: ConnectionOptions,
  ) {
    const { facts } = o
    this.key =
      facts.agent === null
        ? null
        : o.credential === undefined
          ? limiterKeyOf(facts.agent, facts.sandbox)
          : limiterKey(facts.agent, o.credential)
    if (o.track !== null) {
      o.track.connection = this
      deps.tracker.add(o.track as TrackedConn)
    }
  }

  private moved(): readonly [up: number, down: number] {
    const b = this.o.bytes
    if (b === null) return [0, 0]
    const { bytesRead, bytesWritten } = b.socket
    const [up, down] = b.upIsRead ? [bytesRead, bytesWritten] : [bytesWritten, bytesRead]
    return [Math.max(0, up - (b.upAt ?? 0)), Math.max(0, down - (b.downAt ?? 0))]
  }

  account(): void {
    if (this.key === null) return
    const [up, down] = this.moved()
    const delta = up + down - this.counted
    if (delta <= 0) return
    this.counted += delta
    this.deps.limiter.addBytes(this.key, delta)
  }

  finish(failure?: CloseFailure): void {
    if (this.done) return
    this.done = true
    if (this.o.track !== null) this.deps.tracker.remove(this.o.track as TrackedConn)
    this.account()
    const [up, down] = this.moved()
    const record = buildCloseRecord(this.o.facts, up, down, this.o.startedAtMs)
    this.deps.bus.publish(failure === undefined ? record : { ...record, ...failure })
  }
}

export function openConnection(deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>, o: ConnectionOptions): Connection {
  return new OpenConnection(deps, o)
}

/** A CONNECT let through whose client left before anything flowed: its close record, with nothing moved. */
export function recordUnused(
  deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>,
  facts: ConnectionFacts,
  startedAtMs: number,
): void {
  openConnection(deps, { facts, credential: undefined, startedAtMs, bytes: null, track: null }).finish()
}
