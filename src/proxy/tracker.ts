import type { Credential } from '../identity/authenticate.js'
import { limiterKey } from '../identity/sandbox-auth.js'
import type { Limiter } from '../limits/limiter.js'
import type { AgentLimits } from '../policy/types.js'
import type { Logger } from 'pino'

/** Open tunnels and intercepted connections, so a reload can close what the new policy no longer allows. */
export interface TrackedConn {
  readonly agent: string
  readonly host: string
  readonly port: number
  /**
   * Spliced (`tunnel`), read request by request (`intercept`: terminated TLS, or plain HTTP in a
   * tunnel), or a plain-HTTP client connection (`request`: see plain-exchange.ts).
   */
  readonly via: 'tunnel' | 'intercept' | 'request'
  /** The checked address the connection goes to. */
  readonly address: string
  /** The address came from an upstream.resolve pin (a reload that drops the pin closes it). */
  readonly pinned: boolean
  readonly srcIp: string
  readonly credential: Credential
  /**
   * The request it carries: for good on a connection a WebSocket opened or took over (inside a
   * CONNECT), while an answer or a 101 is awaited or in flight on an intercepted or a plain-HTTP
   * connection. A reload asks
   * whether that request is still allowed, not only its host, so a long answer (a download, an event
   * stream) the new policy refuses is cut too.
   */
  readonly request?: InFlightRequest
  close(): void
  /** Its bytes and close record (connection.ts); the sweep counts what it moved so far. */
  readonly connection: { account(): void }
}

export interface InFlightRequest {
  readonly method: string
  readonly path: string
  readonly scheme: 'http' | 'https'
}

export interface TunnelTracker {
  add(conn: TrackedConn): void
  remove(conn: TrackedConn): void
  /** Everything tracked. */
  readonly size: number
  /** Tunnels, intercepted connections and WebSockets (not plain-HTTP connections). */
  readonly connections: number
  /** What the sweeps look at: every tunnel, intercepted connection and WebSocket, and plain answers in flight. */
  all(): Iterable<TrackedConn>
}

export function createTunnelTracker(): TunnelTracker {
  const open = new Set<TrackedConn>()
  let requests = 0
  return {
    add(conn) {
      if (open.has(conn)) return
      open.add(conn)
      if (conn.via === 'request') requests++
    },
    remove(conn) {
      if (open.delete(conn) && conn.via === 'request') requests--
    },
    get size() {
      return open.size
    },
    get connections() {
      return open.size - requests
    },
    *all() {
      // A plain-HTTP connection between requests carries nothing to judge or cut.
      for (const conn of open) if (conn.via !== 'request' || conn.request !== undefined) yield conn
    },
  }
}

/**
 * Count what open connections moved so far towards bytes_per_day, and close those of agents that have
 * used their day's bytes: a long-lived tunnel must not carry on past the budget until it ends.
 * Returns what was closed (for the log).
 */
export function sweepTunnelBytes(
  tracker: TunnelTracker,
  limiter: Limiter,
  limitsOf: (agent: string) => AgentLimits | undefined,
): TrackedConn[] {
  const closed: TrackedConn[] = []
  for (const conn of [...tracker.all()]) {
    conn.connection.account()
    const limits = limitsOf(conn.agent)
    // A sandbox's bytes count towards its own budget (the template's limits, per sandbox).
    if (limits && limiter.bytesExhausted(limiterKey(conn.agent, conn.credential), limits)) {
      conn.close()
      closed.push(conn)
    }
  }
  return closed
}

/** sweepTunnelBytes every second, logging what it closes; returns the function that stops it. */
export function startBytesSweep(
  tracker: TunnelTracker,
  limiter: Limiter,
  limitsOf: (agent: string) => AgentLimits | undefined,
  log: Logger,
): () => void {
  const timer = setInterval(() => {
    for (const c of sweepTunnelBytes(tracker, limiter, limitsOf))
      log.info(
        { code: 'PC_TUNNEL_BYTES_EXHAUSTED', agent: c.agent, host: c.host },
        'tunnel closed: the agent used its bytes_per_day',
      )
  }, 1000)
  timer.unref()
  return () => clearInterval(timer)
}
