import type { Logger } from 'pino'
import { decodeTime } from 'ulid'
import type { DecisionRecord } from '../telemetry/events.js'
import type { RingSink } from '../telemetry/ring-sink.js'

/** Reads one decision by request id from the Redis stream (near the time its ULID says it was made). */
export type StreamLookup = (requestId: string, madeAtMs: number) => Promise<DecisionRecord | null>

/**
 * The decision an approval is made from: this instance's ring, else (with Redis) any instance's record
 * in the stream. A Redis failure is a warning and rejects: "no such request" would be a guess (another
 * instance or worker may hold it), so the admin API answers 503, as for any approval while Redis is away.
 */
export function createDecisionLookup(
  ring: RingSink,
  stream: () => StreamLookup | null,
  log: Logger,
): (requestId: string) => Promise<DecisionRecord | null> {
  return async (requestId) => {
    const snap = ring.snapshot()
    for (let i = snap.length - 1; i >= 0; i--) {
      const r = snap[i]
      if (r && r.event === 'decision' && r.id === requestId) return r
    }
    const lookup = stream()
    if (lookup === null) return null
    let madeAt: number
    try {
      madeAt = decodeTime(requestId)
    } catch {
      return null
    }
    try {
      return await lookup(requestId, madeAt)
    } catch (err) {
      log.warn({ code: 'PC_APPROVALS_REDIS', reason: String(err) }, 'could not look the request up in the Redis stream')
      throw err
    }
  }
}
