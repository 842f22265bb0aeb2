/**
 * `suggestRules` off the event loop, for the admin API (GET /api/suggest): with tens of thousands of
 * denials it takes seconds, and the proxy must answer traffic meanwhile. One worker thread, started
 * on first use; suggestions wait their turn. The worker reads the config from the text on disk (the
 * rules are written into that file) and the records as sent; it holds no state between jobs.
 */
import type { DenyFiles } from '../config/compile-packages.js'
import type { DecisionRecord } from '../telemetry/events.js'
import { createOneWorker, workerUrl } from '../workers/pool.js'

export interface SuggestJob {
  readonly configText: string
  readonly file: string
  readonly env: NodeJS.ProcessEnv
  readonly denyFiles: DenyFiles
  /** Oldest first. */
  readonly records: readonly DecisionRecord[]
  readonly agent?: string
  readonly group?: string
}

export type SuggestResult =
  /** reportJson of the report. */
  | { readonly kind: 'report'; readonly report: object }
  /** The config on disk does not compile (a refused edit): it cannot take the rules. */
  | { readonly kind: 'config_error'; readonly message: string }
  | { readonly kind: 'failed'; readonly why: string }

export interface SuggestRunner {
  run(job: SuggestJob): Promise<SuggestResult>
  close(): void
}

const WORKER_URL = workerUrl(import.meta.url, 'suggest-worker')

export function createSuggestRunner(onWorkerError: (err: unknown) => void): SuggestRunner {
  const pool = createOneWorker<SuggestJob, SuggestResult>(WORKER_URL, onWorkerError)
  return { run: (job) => pool.run(job), close: () => pool.close() }
}
