import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { RuntimeConfig } from './types.js'
import { loadConfig } from './load.js'
import { createConfigReader } from './config-reader.js'
import { ConfigError, PortcullisError } from '../errors.js'

export type ReloadOutcome =
  { readonly ok: true; readonly config: RuntimeConfig } | { readonly ok: false; readonly error: string }

export interface ConfigLoader {
  /** Load, validate and compile the file now. Never throws; loads run one at a time, in call order. */
  load(): Promise<ReloadOutcome>
  /** Stops the thread that reads large files. */
  close(): void
}

/** Reloads of a running proxy: a large file is parsed and checked off the event loop (config-reader.ts). */
export function createConfigLoader(
  file: string,
  env: NodeJS.ProcessEnv,
  onWorkerError: (err: unknown) => void,
): ConfigLoader {
  let chain: Promise<unknown> = Promise.resolve()
  const reader = createConfigReader(onWorkerError)
  return {
    close: () => reader.close(),
    load() {
      const next = chain.then(async (): Promise<ReloadOutcome> => {
        try {
          return { ok: true, config: await loadConfig(file, env, { refuseEmpty: true, reader }) }
        } catch (err) {
          const error =
            err instanceof ConfigError || err instanceof PortcullisError
              ? err.message
              : `unexpected error: ${String(err)}`
          return { ok: false, error }
        }
      })
      chain = next.catch(() => undefined)
      return next
    },
  }
}

const DEBOUNCE_MS = 150

/**
 * Calls `onChange` (debounced) when the file is edited. Watches the file's directory, not the file:
 * editors that save by writing a new file and renaming it over the old one replace the inode, and a
 * watch on the file itself would go deaf after the first such save. Returns the function that stops it.
 */
export function watchConfigFile(file: string, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | null = null
  let watcher: FSWatcher | null = null
  try {
    const name = basename(file)
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed.toString() !== name) return
      if (timer) clearTimeout(timer)
      timer = setTimeout(() => {
        timer = null
        onChange()
      }, DEBOUNCE_MS)
    })
    watcher.on('error', () => undefined)
  } catch {
    // No watcher (e.g. the directory vanished): SIGHUP and POST /api/reload still work.
    watcher = null
  }
  return () => {
    if (timer) clearTimeout(timer)
    watcher?.close()
  }
}
