/**
 * Reloads read a large config off the event loop: a 4 MiB policy is seconds of YAML parsing and
 * compiling, and the proxy must go on answering traffic meanwhile. One worker thread, started on
 * the first large reload (a small file is parsed in place: load.ts), checks the text the way start
 * does (every problem located) and sends back the converted document; the proxy compiles that again.
 */
import { ConfigError, type ConfigIssue } from '../errors.js'
import { createOneWorker, workerUrl } from '../workers/pool.js'
import type { CheckedYaml, ConfigReader } from './load.js'

export interface ConfigCheckJob {
  readonly text: string
  readonly file: string
  readonly env: NodeJS.ProcessEnv
}

export type ConfigCheckReply =
  | ({ readonly kind: 'ok' } & CheckedYaml)
  | { readonly kind: 'invalid'; readonly issues: readonly ConfigIssue[] }
  /** Anything but a ConfigError: a bug, said as such. */
  | { readonly kind: 'error'; readonly message: string }

const WORKER_URL = workerUrl(import.meta.url, 'config-worker')

export function createConfigReader(onWorkerError: (err: unknown) => void): ConfigReader & { close(): void } {
  const pool = createOneWorker<ConfigCheckJob, ConfigCheckReply>(WORKER_URL, onWorkerError)
  return {
    async read(text, file, env) {
      const outcome = await pool.run({ text, file, env: { ...env } })
      switch (outcome.kind) {
        case 'ok':
          return { plain: outcome.plain, denyFiles: outcome.denyFiles }
        case 'invalid':
          throw new ConfigError(outcome.issues)
        case 'error':
          throw new Error(outcome.message)
        case 'failed':
          throw new Error(`the config reader thread ${outcome.why === 'closed' ? 'was closed' : 'failed'}`)
      }
    },
    close: () => pool.close(),
  }
}
