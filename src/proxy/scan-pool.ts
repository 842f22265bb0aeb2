/**
 * A fixed pool of scan workers, so that decoding and scanning a body (several milliseconds at the
 * cap, see inspect.ts) never holds the proxy's event loop. Workers start on first use, one job each
 * at a time, jobs wait in arrival order; an idle worker does not keep the process alive; close()
 * ends them all. A worker that dies fails its job closed (`scan_failed`) and is replaced on demand.
 */
import { Worker } from 'node:worker_threads'
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
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './scan-worker.ts' : './scan-worker.js', import.meta.url)

interface Pending {
  readonly message: ScanJobMessage
  readonly resolve: (result: PooledScan) => void
}

interface Slot {
  readonly worker: Worker
  job: Pending | null
}

export function createScanPool(size: number, onWorkerError: (err: unknown) => void = () => {}): ScanPool {
  const slots: Slot[] = []
  const waiting: Pending[] = []
  let nextId = 0
  let closed = false

  const failed = (detail: 'scan_failed' | 'closed'): PooledScan => ({
    verdict: { kind: 'uninspectable', detail },
    body: null,
  })

  const start = (slot: Slot, job: Pending): void => {
    slot.job = job
    slot.worker.ref()
    slot.worker.postMessage(job.message, [job.message.body])
  }

  const dispatch = (): void => {
    while (waiting.length > 0) {
      let slot = slots.find((s) => s.job === null)
      if (slot === undefined && slots.length < size) slot = spawn()
      if (slot === undefined) return
      start(slot, waiting.shift()!)
    }
  }

  const spawn = (): Slot => {
    const slot: Slot = { worker: new Worker(WORKER_URL), job: null }
    slot.worker.on('message', (msg: ScanResultMessage) => {
      const job = slot.job
      slot.job = null
      slot.worker.unref()
      job?.resolve({ verdict: msg.verdict, body: new Uint8Array(msg.body) })
      dispatch()
    })
    slot.worker.on('error', (err) => onWorkerError(err))
    slot.worker.once('exit', () => {
      slots.splice(slots.indexOf(slot), 1)
      slot.job?.resolve(failed(closed ? 'closed' : 'scan_failed'))
      slot.job = null
      if (!closed) dispatch()
    })
    slots.push(slot)
    return slot
  }

  return {
    scan(job, limits) {
      if (closed) return Promise.resolve(failed('closed'))
      const { body, ...rest } = job
      // Only a buffer the body owns whole may be transferred (a pooled one is shared with others).
      const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : body.slice()
      const message: ScanJobMessage = { id: nextId++, job: rest, limits, body: owned.buffer as ArrayBuffer }
      return new Promise((resolve) => {
        waiting.push({ message, resolve })
        dispatch()
      })
    },
    close() {
      if (closed) return
      closed = true
      for (const job of waiting.splice(0)) job.resolve(failed('closed'))
      for (const slot of slots) void slot.worker.terminate()
    },
  }
}
