import type { Socket } from 'node:net'

/** Per-client-connection facts, kept on the socket under kConnState. */
export interface ConnState {
  readonly src: string
  readonly srcIp: string
  readonly acceptedAtMs: number
}

export const kConnState = Symbol('portcullis.connState')
const kFirstHeadTimer = Symbol('portcullis.firstHeadTimer')

declare module 'node:net' {
  interface Socket {
    [kConnState]?: ConnState
    [kFirstHeadTimer]?: NodeJS.Timeout
  }
}

/**
 * Node's header timeout counts from a request's first byte, so a connection that never sends one
 * would be held forever. Until its first request head is complete (headStarted), a connection gets
 * `timeoutMs`, then `onTimeout`.
 */
export function armFirstHeadTimer(socket: Socket, timeoutMs: number, onTimeout: () => void): void {
  const timer = setTimeout(onTimeout, timeoutMs)
  timer.unref()
  socket[kFirstHeadTimer] = timer
}

/** A request head arrived on this connection: the first-head deadline no longer applies. */
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
