/**
 * A small pool of worker threads that run metadata rewrites (rewrite-job.ts), so that parsing,
 * filtering and serialising a big packument (`@types/node`: 10-15 MiB, ~100 ms or more) never
 * holds the proxy's event loop. Shaped like proxy/scan-pool.ts: workers start on first use and
 * take one job at a time, jobs wait in arrival order, an idle worker does not keep the process
 * alive, close() ends them all, and a worker that dies fails its job closed (`failed`).
 *
 * Rules travel as plain data (the `packages` block) and are compiled in the worker once: each
 * PackageRules object gets an id here, its block is sent to a worker the first time that worker
 * sees the id, and a worker that has forgotten it asks again (`need_rules`).
 */
import { Worker } from 'node:worker_threads'
import { MAX_DOCUMENT_BYTES, type RewriteJob, type RewriteOutcome } from './rewrite-job.js'
import type { Ecosystem, PackageRules, PackageRulesBlock } from './rules.js'

export interface RewriteJobMessage {
  readonly id: number
  readonly job: RewriteJob
  readonly rulesId: number
  /** Sent when the worker may not know `rulesId` yet. */
  readonly rules: { readonly ecosystem: Ecosystem; readonly block: PackageRulesBlock } | null
  readonly body: ArrayBuffer
}

export type RewriteReplyMessage =
  | { readonly id: number; readonly kind: 'done'; readonly outcome: RewriteOutcome }
  | { readonly id: number; readonly kind: 'need_rules'; readonly body: ArrayBuffer }

export interface PackumentPool {
  /**
   * Rewrite `bytes` (moved to the worker: the caller must not use them afterwards) under `rules`.
   * Never rejects: a document over MAX_DOCUMENT_BYTES is `invalid`/`too_large` without a worker,
   * and a dead worker or a closed pool is `failed`.
   */
  rewrite(bytes: Uint8Array, options: RewriteJob & { readonly rules: PackageRules }): Promise<RewriteOutcome>
  close(): void
}

// Built, this is dist/packages/packument-pool.js beside packument-worker.js; under a TypeScript
// loader (tap, tsx) it is the .ts source, and the worker inherits the loader through execArgv.
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './packument-worker.ts' : './packument-worker.js',
  import.meta.url,
)

/** A worker forgets rules it has not used lately; the pool forgets what it sent past this many. */
const KNOWN_RULES_PER_WORKER = 32

interface Pending {
  message: RewriteJobMessage
  readonly rules: PackageRules
  readonly resolve: (outcome: RewriteOutcome) => void
}

interface Slot {
  readonly worker: Worker
  readonly known: Set<number>
  job: Pending | null
}

/** Bytes the worker may own: a view on part of a shared (pooled) buffer is copied first. */
function owned(bytes: Uint8Array): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
  return (whole ? bytes : bytes.slice()).buffer as ArrayBuffer
}

export function createPackumentPool(size = 1, onWorkerError: (err: unknown) => void = () => {}): PackumentPool {
  const slots: Slot[] = []
  const waiting: Pending[] = []
  const ruleIds = new WeakMap<PackageRules, number>()
  let nextRulesId = 0
  let nextId = 0
  let closed = false

  const idOf = (rules: PackageRules): number => {
    let id = ruleIds.get(rules)
    if (id === undefined) ruleIds.set(rules, (id = nextRulesId++))
    return id
  }

  const start = (slot: Slot, job: Pending): void => {
    const { rulesId } = job.message
    const send = !slot.known.has(rulesId)
    if (send) {
      if (slot.known.size >= KNOWN_RULES_PER_WORKER) slot.known.clear()
      slot.known.add(rulesId)
    }
    const rules = send ? { ecosystem: job.rules.ecosystem, block: job.rules.block } : null
    job.message = { ...job.message, rules }
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
    const slot: Slot = { worker: new Worker(WORKER_URL), known: new Set(), job: null }
    slot.worker.on('message', (msg: RewriteReplyMessage) => {
      const job = slot.job
      if (job === null) return
      if (msg.kind === 'need_rules') {
        slot.known.delete(job.message.rulesId)
        start(slot, { ...job, message: { ...job.message, body: msg.body } })
        return
      }
      slot.job = null
      slot.worker.unref()
      job.resolve(msg.outcome)
      dispatch()
    })
    slot.worker.on('error', (err) => onWorkerError(err))
    slot.worker.once('exit', () => {
      slots.splice(slots.indexOf(slot), 1)
      slot.job?.resolve({ kind: 'failed', detail: closed ? 'closed' : 'worker_failed' })
      slot.job = null
      if (!closed) dispatch()
    })
    slots.push(slot)
    return slot
  }

  return {
    rewrite(bytes, options) {
      if (closed) return Promise.resolve({ kind: 'failed', detail: 'closed' })
      if (bytes.byteLength > MAX_DOCUMENT_BYTES) return Promise.resolve({ kind: 'invalid', problem: 'too_large' })
      const { rules, ...job } = options
      const message: RewriteJobMessage = { id: nextId++, job, rulesId: idOf(rules), rules: null, body: owned(bytes) }
      return new Promise((resolve) => {
        waiting.push({ message, rules, resolve })
        dispatch()
      })
    },
    close() {
      if (closed) return
      closed = true
      for (const job of waiting.splice(0)) job.resolve({ kind: 'failed', detail: 'closed' })
      for (const slot of slots) void slot.worker.terminate()
    },
  }
}
