import type { Socket } from 'node:net'
import { formatAuthority } from '../net/host.js'

/** Per-client-connection facts, kept on the socket under kConnState. */
export interface ConnState {
  readonly src: string
  readonly srcIp: string
  readonly acceptedAtMs: number
}

export const kConnState = Symbol('portcullis.connState')
const kHeadDeadline = Symbol('portcullis.headDeadline')

/** A connection's head deadline: when it passes (`at`, performance.now() ms), and the one timer that checks it. */
interface HeadDeadline {
  at: number
  onTimeout: (socket: Socket) => void
  timer: NodeJS.Timeout | undefined
  /** When the pending timer fires. */
  due: number
}

declare module 'node:net' {
  interface Socket {
    [kConnState]?: ConnState
    [kHeadDeadline]?: HeadDeadline
  }
}

/**
 * A deadline for the next request head on a connection: Node's header timeout starts only with a
 * request's first byte (blank lines do not start one), and its keep-alive timeout is reset by any
 * byte, so a client could hold a connection forever by sending nothing, or CRLF now and then.
 * Armed at accept (header_timeout_ms) and after each response (idle_timeout_ms); lifted when a
 * request head is complete (headStarted); `onTimeout` closes the connection.
 *
 * Lifting and arming move a timestamp, not a timer: a kept-alive connection does both for every
 * request, and a timer created and cleared each time was an allocation and two list operations per
 * request. The connection's one timer fires at the earliest deadline it was set for, and sets itself
 * again for a later one, or stops when none is armed.
 */
export function armHeadDeadline(socket: Socket, timeoutMs: number, onTimeout: (socket: Socket) => void): void {
  const at = performance.now() + timeoutMs
  let d = socket[kHeadDeadline]
  if (d === undefined) {
    d = { at, onTimeout, timer: undefined, due: Infinity }
    socket[kHeadDeadline] = d
    socket.on('close', endOnClose)
  }
  d.at = at
  d.onTimeout = onTimeout
  if (d.timer === undefined || d.due > at) schedule(socket, d, timeoutMs)
}

function schedule(socket: Socket, d: HeadDeadline, inMs: number): void {
  if (d.timer !== undefined) clearTimeout(d.timer)
  // Shared functions and arguments, no closures: every connection has one, and an idle one keeps it.
  const timer = setTimeout(headDeadlineCheck, inMs, socket, d)
  timer.unref()
  d.timer = timer
  d.due = performance.now() + inMs
}

function headDeadlineCheck(socket: Socket, d: HeadDeadline): void {
  d.timer = undefined
  if (d.at === Infinity || socket.destroyed) return
  const left = d.at - performance.now()
  if (left > 0) return schedule(socket, d, left)
  d.at = Infinity
  d.onTimeout(socket)
}

function endOnClose(this: Socket): void {
  headsEnded(this)
}

/** A listener for sockets: destroy the socket that emitted (one function for every connection). */
export function destroyEmitter(this: Socket): void {
  this.destroy()
}

/** A request head arrived on this connection: its deadline no longer applies. */
export function headStarted(socket: Socket): void {
  const d = socket[kHeadDeadline]
  if (d !== undefined) d.at = Infinity
}

/** No request head will follow on this connection (it became a tunnel): its timer goes too. */
export function headsEnded(socket: Socket): void {
  const d = socket[kHeadDeadline]
  if (d === undefined) return
  d.at = Infinity
  if (d.timer !== undefined) clearTimeout(d.timer)
  d.timer = undefined
}

export function attachConnState(socket: Socket): ConnState {
  const ip = (socket.remoteAddress ?? '').replace(/^::ffff:/, '')
  const state: ConnState = { src: formatAuthority(ip, socket.remotePort ?? 0), srcIp: ip, acceptedAtMs: Date.now() }
  socket[kConnState] = state
  return state
}

/** A socket layered on a client connection (TLS terminated on it) has that connection's facts. */
export function shareConnState(from: Socket, to: Socket): void {
  to[kConnState] = connStateOf(from)
}

export function connStateOf(socket: Socket): ConnState {
  return socket[kConnState] ?? attachConnState(socket)
}
