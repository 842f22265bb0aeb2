/**
 * A small pool of worker threads that run metadata rewrites (rewrite-job.ts), so that parsing,
 * filtering and serialising a big packument (`@types/node`: 10-15 MiB, ~100 ms or more) never
 * holds the proxy's event loop (workers/pool.ts: one job per worker at a time, a worker that dies
 * fails its job closed as `failed`).
 *
 * Rules travel as plain data (the `packages` blocks) and are compiled in the worker once: each
 * PackageRules object gets an id here, its blocks are sent to a worker the first time that worker
 * sees the id, and a worker that has forgotten it asks again (`need_rules`).
 */
import { createWorkerPool, transferable, workerUrl } from '../workers/pool.js'
import { MAX_DOCUMENT_BYTES, type RewriteJob, type RewriteOutcome } from './rewrite-job.js'
import type { Ecosystem, PackageRules, PackageRulesBlock } from './rules.js'

export interface RewriteJobMessage {
  readonly id: number
  readonly job: RewriteJob
  readonly rulesId: number
  /** Sent when the worker may not know `rulesId` yet. */
  readonly rules: { readonly ecosystem: Ecosystem; readonly blocks: readonly PackageRulesBlock[] } | null
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
const WORKER_URL = workerUrl(import.meta.url, 'packument-worker')

/** A worker forgets rules it has not used lately; the pool forgets what it sent past this many. */
const KNOWN_RULES_PER_WORKER = 32

interface Job {
  readonly message: RewriteJobMessage
  readonly rules: PackageRules
}

export function createPackumentPool(size = 1, onWorkerError: (err: unknown) => void = () => {}): PackumentPool {
  const ruleIds = new WeakMap<PackageRules, number>()
  let nextRulesId = 0
  let nextId = 0
  const idOf = (rules: PackageRules): number => {
    let id = ruleIds.get(rules)
    if (id === undefined) ruleIds.set(rules, (id = nextRulesId++))
    return id
  }
  const pool = createWorkerPool<Job, RewriteReplyMessage, RewriteOutcome, Set<number>>({
    url: WORKER_URL,
    size,
    onWorkerError,
    failed: (why) => ({ kind: 'failed', detail: why }),
    slotState: () => new Set(),
    send({ message, rules }, known) {
      // The rules travel with the job only to a worker that may not have them yet.
      const send = !known.has(message.rulesId)
      if (send) {
        if (known.size >= KNOWN_RULES_PER_WORKER) known.clear()
        known.add(message.rulesId)
      }
      const withRules = { ...message, rules: send ? { ecosystem: rules.ecosystem, blocks: rules.blocks } : null }
      return { message: withRules, transfer: [message.body] }
    },
    receive(reply, job, known) {
      if (reply.kind === 'done') return { done: reply.outcome }
      known.delete(job.message.rulesId)
      return { again: { ...job, message: { ...job.message, body: reply.body } } }
    },
  })
  return {
    rewrite(bytes, options) {
      if (pool.closed) return Promise.resolve({ kind: 'failed', detail: 'closed' })
      if (bytes.byteLength > MAX_DOCUMENT_BYTES) return Promise.resolve({ kind: 'invalid', problem: 'too_large' })
      const { rules, ...job } = options
      const message: RewriteJobMessage = {
        id: nextId++,
        job,
        rulesId: idOf(rules),
        rules: null,
        body: transferable(bytes),
      }
      return pool.run({ message, rules })
    },
    close: () => pool.close(),
  }
}
