import type { Socket } from 'node:net'
import { LRUCache } from 'lru-cache'
import { createBucket, resize, take, type TokenBucket } from '../limits/token-bucket.js'

/**
 * What a client may cost before it has proved who it is. A connection that has not authenticated
 * counts against its source address (at most `maxUnauthenticatedPerSource` at once: idle sockets
 * opened by one client cannot use up the process's descriptors for everyone), and every answer an
 * unauthenticated request gets (407, 403 for a bad token) spends from a per-source budget (so a
 * client without credentials cannot fill the log and the record with denials). Authenticated
 * traffic is bounded by the agent's own limits instead.
 */
export interface ConnGate {
  /** At accept. False: the source already holds its share of unauthenticated connections (close it). */
  accept(socket: Socket, srcIp: string): boolean
  /** The connection proved an identity: it no longer counts against its source. */
  authenticated(socket: Socket): void
  isAuthenticated(socket: Socket): boolean
  /** One unauthenticated denial from `srcIp`: true while within the source's budget. */
  spendDenial(srcIp: string, nowMs?: number): boolean
  /** Node refused a connection past listen.max_connections. */
  noteDropped(): void
  /** A connection's first request head did not arrive within header_timeout_ms (408, closed). */
  noteHeaderTimeout(): void
  /** Connections refused, by cause (for metrics). */
  readonly refused: Readonly<Record<RefusalCause, number>>
}

export type RefusalCause =
  'unauthenticated_per_source' | 'unauthenticated_budget' | 'max_connections' | 'header_timeout'

export interface ConnGateOptions {
  readonly maxUnauthenticatedPerSource: number
  /** Unauthenticated denials per source per minute (a bucket: this many at once, refilled over a minute). */
  readonly unauthenticatedDenialsPerMinute: number
}

const kAuthState = Symbol('portcullis.authState')
interface AuthState {
  readonly srcIp: string
  authenticated: boolean
  /** The gate's own count of unauthenticated connections per source, shared by every socket. */
  readonly leave: (srcIp: string) => void
}
type GatedSocket = Socket & { [kAuthState]?: AuthState }

/** One listener for every socket (no closure per connection): an unauthenticated one leaves its source's count. */
function onGatedClose(this: GatedSocket): void {
  const state = this[kAuthState]
  if (state !== undefined && !state.authenticated) state.leave(state.srcIp)
}

/** Sources whose denial budgets are remembered: a flood from many addresses cannot grow this without bound. */
const MAX_TRACKED_SOURCES = 10_000

export function createConnGate(opts: () => ConnGateOptions): ConnGate {
  const unauthenticated = new Map<string, number>()
  const budgets = new LRUCache<string, TokenBucket>({ max: MAX_TRACKED_SOURCES })
  const refused: Record<RefusalCause, number> = {
    unauthenticated_per_source: 0,
    unauthenticated_budget: 0,
    max_connections: 0,
    header_timeout: 0,
  }
  const leave = (srcIp: string): void => {
    const n = (unauthenticated.get(srcIp) ?? 1) - 1
    if (n <= 0) unauthenticated.delete(srcIp)
    else unauthenticated.set(srcIp, n)
  }
  return {
    refused,
    noteDropped: () => void refused.max_connections++,
    noteHeaderTimeout: () => void refused.header_timeout++,
    accept(socket: GatedSocket, srcIp) {
      const held = unauthenticated.get(srcIp) ?? 0
      if (held >= opts().maxUnauthenticatedPerSource) {
        refused.unauthenticated_per_source++
        return false
      }
      unauthenticated.set(srcIp, held + 1)
      socket[kAuthState] = { srcIp, authenticated: false, leave }
      socket.on('close', onGatedClose)
      return true
    },
    authenticated(socket: GatedSocket) {
      const state = socket[kAuthState]
      if (state === undefined || state.authenticated) return
      state.authenticated = true
      leave(state.srcIp)
    },
    isAuthenticated: (socket: GatedSocket) => socket[kAuthState]?.authenticated === true,
    spendDenial(srcIp, nowMs = Date.now()) {
      const perMinute = opts().unauthenticatedDenialsPerMinute
      let bucket = budgets.get(srcIp)
      if (bucket === undefined) {
        bucket = createBucket(perMinute, nowMs)
        budgets.set(srcIp, bucket)
      } else resize(bucket, perMinute, nowMs) // a reload that changed the budget applies to known sources too
      if (take(bucket, nowMs).ok) return true
      refused.unauthenticated_budget++
      return false
    },
  }
}
