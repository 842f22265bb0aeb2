import type { Socket } from 'node:net'

/** Per-client-connection facts, kept on the socket under kConnState. */
export interface ConnState {
  readonly src: string
  readonly srcIp: string
  readonly acceptedAtMs: number
}

export const kConnState = Symbol('portcullis.connState')
const kFirstHeadTimer = Symbol('portcullis.headDeadline')
const kDeadlineHooked = Symbol('portcullis.headDeadlineHooked')

declare module 'node:net' {
  interface Socket {
    [kConnState]?: ConnState
    [kFirstHeadTimer]?: NodeJS.Timeout
    [kDeadlineHooked]?: boolean
  }
}

/**
 * A deadline for the next request head on a connection: Node's header timeout starts only with a
 * request's first byte (blank lines do not start one), and its keep-alive timeout is reset by any
 * byte, so a client could hold a connection forever by sending nothing, or CRLF now and then.
 * Armed at accept (header_timeout_ms) and after each response (idle_timeout_ms); cleared when a
 * request head is complete (headStarted); `onTimeout` closes the connection.
 */
export function armHeadDeadline(socket: Socket, timeoutMs: number, onTimeout: (socket: Socket) => void): void {
  const prior = socket[kFirstHeadTimer]
  if (prior !== undefined) clearTimeout(prior)
  if (socket[kDeadlineHooked] !== true) {
    socket[kDeadlineHooked] = true
    socket.on('close', clearOnClose)
  }
  // Shared functions and arguments, no closures: every connection arms one, and an idle one keeps it.
  const timer = setTimeout(headDeadlinePassed, timeoutMs, socket, onTimeout)
  timer.unref()
  socket[kFirstHeadTimer] = timer
}

function headDeadlinePassed(socket: Socket, onTimeout: (socket: Socket) => void): void {
  socket[kFirstHeadTimer] = undefined
  if (!socket.destroyed) onTimeout(socket)
}

function clearOnClose(this: Socket): void {
  headStarted(this)
}

/** A listener for sockets: destroy the socket that emitted (one function for every connection). */
export function destroyEmitter(this: Socket): void {
  this.destroy()
}

/** A request head arrived on this connection: its deadline no longer applies. */
export function headStarted(socket: Socket): void {
  const timer = socket[kFirstHeadTimer]
  if (timer === undefined) return
  clearTimeout(timer)
  socket[kFirstHeadTimer] = undefined
}

export function attachConnState(socket: Socket): ConnState {
  const ip = (socket.remoteAddress ?? '').replace(/^::ffff:/, '')
  const src = ip.includes(':') ? `[${ip}]:${socket.remotePort ?? 0}` : `${ip}:${socket.remotePort ?? 0}`
  const state: ConnState = { src, srcIp: ip, acceptedAtMs: Date.now() }
  socket[kConnState] = state
  return state
}

export function connStateOf(socket: Socket): ConnState {
  return socket[kConnState] ?? attachConnState(socket)
}
