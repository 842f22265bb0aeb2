/**
 * A fixed pool of scan workers (workers/pool.ts), so that decoding and scanning a body (several
 * milliseconds at the cap, see inspect.ts) never holds the proxy's event loop. A worker that dies
 * fails its job closed (`scan_failed`).
 */
import { createWorkerPool, transferable, workerUrl, type WorkerFailure } from '../workers/pool.js'
import type { ScanJob, ScanLimits, ScanVerdict } from './scan-request.js'

/** What a worker is sent: the body's bytes are transferred, not copied. */
export interface ScanJobMessage {
  readonly id: number
  readonly job: Omit<ScanJob, 'body'>
  readonly limits: ScanLimits
  readonly body: ArrayBuffer
}

export interface ScanResultMessage {
  readonly id: number
  readonly verdict: ScanVerdict
  readonly body: ArrayBuffer
}

export interface PooledScan {
  readonly verdict: ScanVerdict
  /** The body, back from the worker; null when the worker died with it. */
  readonly body: Uint8Array | null
}

export interface ScanPool {
  /** Scans on a worker. `job.body` is moved to the worker and back: the caller must not use it meanwhile. */
  scan(job: ScanJob, limits: ScanLimits): Promise<PooledScan>
  close(): void
}

// Built, this file is dist/proxy/scan-pool.js beside scan-worker.js; under a TypeScript loader (tap,
// tsx) it is the .ts source, and the worker inherits the loader through execArgv.
const WORKER_URL = workerUrl(import.meta.url, 'scan-worker')

const failed = (why: WorkerFailure): PooledScan => ({
  verdict: { kind: 'uninspectable', detail: why === 'closed' ? 'closed' : 'scan_failed' },
  body: null,
})

export function createScanPool(size: number, onWorkerError: (err: unknown) => void = () => {}): ScanPool {
  let nextId = 0
  const pool = createWorkerPool<ScanJobMessage, ScanResultMessage, PooledScan, null>({
    url: WORKER_URL,
    size,
    onWorkerError,
    failed,
    slotState: () => null,
    send: (message) => ({ message, transfer: [message.body] }),
    receive: (msg) => ({ done: { verdict: msg.verdict, body: new Uint8Array(msg.body) } }),
  })
  return {
    scan(job, limits) {
      const { body, ...rest } = job
      // Only a buffer the body owns whole may be transferred (a pooled one is shared with others).
      return pool.run({ id: nextId++, job: rest, limits, body: transferable(body) })
    },
    close: () => pool.close(),
  }
}
