/**
 * inspect_body at the edge: per-agent turns (scan-gate.ts), the body read whole within the cap,
 * then decoding and scanning (scan-request.ts) on a scan worker (scan-pool.ts), or in place when the
 * request is small enough that a worker round trip would cost more than the scan.
 */
import { Buffer } from 'node:buffer'
import type { IncomingHttpHeaders } from 'node:http'
import { readBounded, type Overflow } from './read-body.js'
import { availableParallelism } from 'node:os'
import { createScanGate } from './scan-gate.js'
import { createScanPool } from './scan-pool.js'
import { measureHead, scanRequest, type ScanLimits, type UninspectableDetail } from './scan-request.js'

export type { UninspectableDetail } from './scan-request.js'

export type Inspection =
  /** `body` is the request body exactly as received, to forward instead of the (consumed) stream. */
  | { readonly kind: 'clean'; readonly body: Buffer }
  | { readonly kind: 'secret'; readonly detector: string; readonly body: Buffer }
  /**
   * Could not be inspected whole (too large, undecodable, cut off, agent busy): fail closed. `rest`:
   * a body too large, asked for in audit mode, to go on as it came (nothing of it was dropped).
   */
  | { readonly kind: 'uninspectable'; readonly detail: UninspectableDetail; readonly rest?: Overflow }

/** What inspection reads of a request (an IncomingMessage is one). */
export interface InspectedRequest extends AsyncIterable<unknown> {
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
  /** True once the whole message arrived (false when the client stopped early). */
  readonly complete: boolean
}

export interface InspectorOptions extends Partial<ScanLimits> {
  /** Inspections one agent may have running (reading, decoding, scanning) at once. */
  readonly maxConcurrentPerAgent?: number
  /** Inspections one agent may have waiting for those; one more is refused as `busy`. */
  readonly maxQueuedPerAgent?: number
  /** Scan worker threads; 0 scans on the calling thread (tests and tools, never the proxy). */
  readonly workers?: number
  /** Requests up to this size (target, headers and body), without Content-Encoding, are scanned in place: a worker round trip costs more. */
  readonly inlineMaxBytes?: number
  /** Told when a scan worker fails (its inspection already failed closed): for the operator's log. */
  readonly onWorkerError?: (err: unknown) => void
}

export interface Inspector {
  /**
   * inspect_body for one request: wait for the agent's turn, read the whole body (bounded), decode
   * its Content-Encoding (bounded) and scan target, headers and body, off the event loop. The body is
   * held until the verdict, so nothing of a request carrying a secret reaches upstream.
   */
  inspect(
    req: InspectedRequest,
    requestTarget: string,
    agent: string | null,
    /** Audit mode: a body past the cap comes back whole, as `rest`, to go upstream as it came. */
    keepOverflow?: boolean,
  ): Promise<Inspection>
  /** Ends the scan workers; inspections still waiting or running become `uninspectable` (`closed`). */
  close(): void
}

/**
 * 1 MiB scanned per request (target, headers, body as sent and as decoded, together). API requests
 * and form posts are far smaller; at the cap a scan costs ~2–5 ms of a worker for ordinary text and
 * ~30 ms for text built to be slow (dense anchors or escapes), and an agent's share of memory in
 * flight is a few MiB (maxConcurrentPerAgent × body, decoded body and their latin1 copies). Larger
 * uploads on an inspected rule fail closed: raise maxBytes for a host that needs it.
 */
export const INSPECT_DEFAULTS: Required<Omit<InspectorOptions, 'onWorkerError'>> = {
  maxBytes: 1024 * 1024,
  maxInflateRatio: 20,
  inflateFloorBytes: 64 * 1024,
  maxConcurrentPerAgent: 4,
  maxQueuedPerAgent: 16,
  workers: Math.min(2, availableParallelism()),
  inlineMaxBytes: 16 * 1024,
}

export function createInspector(options: InspectorOptions = {}): Inspector {
  // An option given as undefined keeps its default (callers pass config values that may be unset).
  const o: Required<Omit<InspectorOptions, 'onWorkerError'>> = { ...INSPECT_DEFAULTS }
  for (const [k, v] of Object.entries(options)) if (v !== undefined) Object.assign(o, { [k]: v })
  if (o.maxConcurrentPerAgent < 1) throw new Error('maxConcurrentPerAgent must be at least 1')
  const limits: ScanLimits = {
    maxBytes: o.maxBytes,
    maxInflateRatio: o.maxInflateRatio,
    inflateFloorBytes: o.inflateFloorBytes,
  }
  const gate = createScanGate(o.maxConcurrentPerAgent, o.maxQueuedPerAgent)
  const pool = o.workers > 0 ? createScanPool(o.workers, options.onWorkerError) : null
  let closed = false

  const scan = async (req: InspectedRequest, target: string, keepOverflow: boolean): Promise<Inspection> => {
    const headBytes = measureHead(target, req.rawHeaders)
    const body = await readBounded(req, limits.maxBytes - headBytes, keepOverflow)
    if (body === 'too_large' || body === 'cut_off') return { kind: 'uninspectable', detail: body }
    if (!Buffer.isBuffer(body)) return { kind: 'uninspectable', detail: 'too_large', rest: body }
    if (closed) return { kind: 'uninspectable', detail: 'closed' }
    const job = { target, rawHeaders: req.rawHeaders, contentEncoding: req.headers['content-encoding'], body }
    const inPlace = pool === null || (job.contentEncoding === undefined && headBytes + body.length <= o.inlineMaxBytes)
    const { verdict, body: back } = inPlace ? { verdict: scanRequest(job, limits), body } : await pool.scan(job, limits)
    if (verdict.kind === 'uninspectable') return verdict
    if (back === null) return { kind: 'uninspectable', detail: 'scan_failed' }
    const bytes = Buffer.from(back.buffer, back.byteOffset, back.length)
    return verdict.kind === 'clean' ? { kind: 'clean', body: bytes } : { ...verdict, body: bytes }
  }

  return {
    async inspect(req, requestTarget, agent, keepOverflow = false) {
      if (closed) return { kind: 'uninspectable', detail: 'closed' }
      // The turn is taken before the body is read: a body waiting its turn stays in the socket, not in memory.
      const slot = await gate.enter(agent)
      if (slot === 'busy') return { kind: 'uninspectable', detail: 'busy' }
      try {
        return closed ? { kind: 'uninspectable', detail: 'closed' } : await scan(req, requestTarget, keepOverflow)
      } finally {
        slot.release()
      }
    },
    close() {
      closed = true
      pool?.close()
    },
  }
}
