import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { TunnelTracker } from '../proxy/tracker.js'

export interface ShutdownParts {
  readonly proxy: Server
  readonly admin: () => Server | null
  readonly tracker: TunnelTracker
  /** Everything else, in order, once no connection is left (timers, pools, Redis, the log). */
  readonly release: () => Promise<void>
}

/**
 * Stopping. With `drainMs` (SIGTERM): stop accepting, close idle kept-alive connections as they become
 * idle, and give requests and tunnels in flight that long to finish; then close whatever is left.
 * Without: close everything at once. One close at a time: a second call ends the first one's drain at
 * once (a second signal) and waits for it.
 */
export function createShutdown(parts: ShutdownParts): (opts?: { readonly drainMs?: number }) => Promise<void> {
  let closing: Promise<void> | null = null
  let cutNow: (() => void) | null = null
  // Every client connection, whatever its phase: node hands a CONNECT's socket over and forgets it, so
  // closeAllConnections() misses a tunnel still waiting for its ClientHello (or an intercepted one
  // mid-handshake), which header_timeout_ms alone would end, long past the drain.
  const sockets = new Set<Socket>()
  parts.proxy.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const closeNow = async (drainMs: number): Promise<void> => {
    const admin = parts.admin()
    if (admin) {
      admin.closeAllConnections()
      if (admin.listening) await new Promise<void>((r) => admin.close(() => r()))
    }
    const { proxy } = parts
    // close() stops accepting and resolves once every connection has ended; idle kept-alive ones end now.
    const ended = proxy.listening ? new Promise<void>((r) => proxy.close(() => r())) : Promise.resolve()
    proxy.closeIdleConnections()
    if (drainMs > 0) {
      // A connection whose last response just went out is idle now: node closes idle ones only when asked.
      const sweep = setInterval(() => proxy.closeIdleConnections(), 100)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        ended,
        new Promise<void>((r) => (timer = setTimeout(r, drainMs))),
        new Promise<void>((r) => (cutNow = r)),
      ])
      clearTimeout(timer)
      clearInterval(sweep)
    }
    for (const t of [...parts.tracker.all()]) t.close()
    proxy.closeAllConnections()
    for (const socket of sockets) socket.destroy()
    await ended
    await parts.release()
  }
  return (opts = {}) => {
    if (closing !== null) {
      cutNow?.()
      return closing
    }
    closing = closeNow(opts.drainMs ?? 0)
    return closing
  }
}
