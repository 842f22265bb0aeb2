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
  /** Spliced (`tunnel`), or read request by request (`intercept`: terminated TLS, or plain HTTP in a tunnel). */
  readonly via: 'tunnel' | 'intercept'
  /** The checked address the connection goes to. */
  readonly address: string
  /** The address came from an upstream.resolve pin (a reload that drops the pin closes it). */
  readonly pinned: boolean
  readonly srcIp: string
  readonly credential: Credential
  /**
   * Set for a connection a request opened (a WebSocket): a reload asks whether that request is still
   * allowed, not only its host.
   */
  readonly request?: { readonly method: string; readonly path: string; readonly scheme: 'http' | 'https' }
  close(): void
  /** Its bytes and close record (connection.ts); the sweep counts what it moved so far. */
  readonly connection: { account(): void }
}

export interface TunnelTracker {
  add(conn: TrackedConn): void
  remove(conn: TrackedConn): void
  readonly size: number
  all(): Iterable<TrackedConn>
}

export function createTunnelTracker(): TunnelTracker {
  const open = new Set<TrackedConn>()
  return {
    add(conn) {
      open.add(conn)
    },
    remove(conn) {
      open.delete(conn)
    },
    get size() {
      return open.size
    },
    all() {
      return open.values()
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
