import type { Socket } from 'node:net'

/** Per-client-connection facts, kept on the socket under kConnState. */
export interface ConnState {
  readonly src: string
  readonly srcIp: string
  readonly acceptedAtMs: number
}

export const kConnState = Symbol('portcullis.connState')

declare module 'node:net' {
  interface Socket {
    [kConnState]?: ConnState
  }
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
