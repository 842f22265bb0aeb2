/**
 * The limits one instance applies on its own, whatever else is configured: a token bucket per agent
 * (one instance never bursts past rpm) and concurrent connections per agent (not shared: a
 * connection lives on one instance, and sharing it would need leases that survive a crashed
 * instance). Synchronous; time is an argument.
 */
import { createBucket, refund, resize, take, type TakeResult, type TokenBucket } from './token-bucket.js'

export type Release = () => void

interface LocalAgent {
  bucket: TokenBucket | null
  conns: number
}

export interface LocalLimits {
  /** One request against the agent's bucket (capacity = rpm; null: unlimited, the bucket is dropped). */
  take(agentId: string, rpm: number | null, now: number): TakeResult
  /** Give the last token back (never above capacity). */
  refund(agentId: string): void
  /** A connection slot, or null at the limit (null max: unlimited). The release is idempotent. */
  acquire(agentId: string, max: number | null): Release | null
  /** Open connections, every agent. */
  connections(): number
  /** Drop the agent's bucket unless it holds a connection (it is rebuilt full if the agent returns). */
  forget(agentId: string): void
}

const OK: TakeResult = Object.freeze({ ok: true })

export function createLocalLimits(): LocalLimits {
  const agents = new Map<string, LocalAgent>()
  let connections = 0
  const stateOf = (agentId: string): LocalAgent => {
    let a = agents.get(agentId)
    if (!a) {
      a = { bucket: null, conns: 0 }
      agents.set(agentId, a)
    }
    return a
  }
  return {
    take(agentId, rpm, now) {
      if (rpm === null) {
        const a = agents.get(agentId)
        if (a) a.bucket = null
        return OK
      }
      const a = stateOf(agentId)
      if (a.bucket === null) a.bucket = createBucket(rpm, now)
      else resize(a.bucket, rpm, now)
      return take(a.bucket, now)
    },
    refund(agentId) {
      const bucket = agents.get(agentId)?.bucket
      if (bucket) refund(bucket)
    },
    acquire(agentId, max) {
      const a = stateOf(agentId)
      if (max !== null && a.conns >= max) return null
      a.conns++
      connections++
      let released = false
      return () => {
        if (released) return
        released = true
        a.conns--
        connections--
      }
    },
    connections: () => connections,
    forget(agentId) {
      if ((agents.get(agentId)?.conns ?? 0) === 0) agents.delete(agentId)
    },
  }
}
