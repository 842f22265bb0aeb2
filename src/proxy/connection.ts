import type { Credential } from '../identity/authenticate.js'
import { limiterKey, limiterKeyOf } from '../identity/sandbox-auth.js'
import { buildCloseRecord } from '../telemetry/events.js'
import type { ProxyDeps } from './deps.js'
import type { TrackedConn } from './tracker.js'

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
  /** The connection ended: the rest counted, one close record, no longer tracked. Idempotent. */
  finish(): void
}

/** What the close record names. */
export interface ConnectionFacts {
  readonly id: string
  readonly agent: string | null
  readonly host: string
  readonly sandbox?: string | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
}

/** Bytes moved so far: up (client → upstream) and down, as the connection's own counters say. */
export type ByteCounter = () => readonly [up: number, down: number]

export interface ConnectionOptions {
  readonly facts: ConnectionFacts
  /** How the agent authenticated (a sandbox's bytes count towards its own budget); else the facts' sandbox says. */
  readonly credential: Credential | undefined
  readonly startedAtMs: number
  readonly moved: ByteCounter
  /** What a reload, a revocation or the sweep needs to close it; null: not tracked (a plain request). */
  readonly track: Omit<TrackedConn, 'account'> | null
}

const NOTHING_MOVED: ByteCounter = () => [0, 0]

export function openConnection(deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>, o: ConnectionOptions): Connection {
  const { facts } = o
  let counted = 0
  let done = false
  const key =
    facts.agent === null
      ? null
      : o.credential === undefined
        ? limiterKeyOf(facts.agent, facts.sandbox)
        : limiterKey(facts.agent, o.credential)
  const account = (): void => {
    if (key === null) return
    const [up, down] = o.moved()
    const delta = up + down - counted
    if (delta <= 0) return
    counted += delta
    deps.limiter.addBytes(key, delta)
  }
  // The caller's fresh `track` object becomes the tracked one (no copy: an idle tunnel holds it for hours).
  const untrack = o.track === null ? null : deps.tracker.add(Object.assign(o.track, { account }))
  return {
    account,
    finish() {
      if (done) return
      done = true
      untrack?.()
      account()
      const [up, down] = o.moved()
      deps.bus.publish(buildCloseRecord(facts, up, down, o.startedAtMs))
    },
  }
}

/** A CONNECT let through whose client left before anything flowed: its close record, with nothing moved. */
export function recordUnused(
  deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>,
  facts: ConnectionFacts,
  startedAtMs: number,
): void {
  openConnection(deps, { facts, credential: undefined, startedAtMs, moved: NOTHING_MOVED, track: null }).finish()
}
