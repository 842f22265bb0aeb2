import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { RuntimeConfig } from './types.js'
import { loadConfig } from './load.js'
import { ConfigError, PortcullisError } from '../errors.js'

export type ReloadOutcome =
  { readonly ok: true; readonly config: RuntimeConfig } | { readonly ok: false; readonly error: string }

export interface ConfigWatcher {
  /** Load, validate and compile the file now (SIGHUP, POST /api/reload). Never throws. */
  reload(trigger: string): Promise<ReloadOutcome>
  close(): void
}

const DEBOUNCE_MS = 150

/**
 * Watches the config file's directory, not the file: editors that save by
 * writing a new file and renaming it over the old one replace the inode, and a
 * watch on the file itself would go deaf after the first such save. Loads are
 * serialised; a refused edit leaves the last good policy in force.
 */
export function watchConfig(
  file: string,
  env: NodeJS.ProcessEnv,
  apply: (outcome: ReloadOutcome, trigger: string) => void,
): ConfigWatcher {
  let timer: NodeJS.Timeout | null = null
  let chain: Promise<unknown> = Promise.resolve()
  let watcher: FSWatcher | null = null

  const reload = (trigger: string): Promise<ReloadOutcome> => {
    const next = chain.then(async (): Promise<ReloadOutcome> => {
      let outcome: ReloadOutcome
      try {
        outcome = { ok: true, config: await loadConfig(file, env) }
      } catch (err) {
        const error =
          err instanceof ConfigError || err instanceof PortcullisError
            ? err.message
            : `unexpected error: ${String(err)}`
        outcome = { ok: false, error }
      }
      apply(outcome, trigger)
      return outcome
    })
    chain = next.catch(() => undefined)
    return next
  }

  try {
    const name = basename(file)
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed.toString() !== name) return
      if (timer) clearTimeout(timer)
      timer = setTimeout(() => {
        timer = null
        void reload('file')
      }, DEBOUNCE_MS)
    })
    watcher.on('error', () => undefined)
  } catch {
    // No watcher (e.g. the directory vanished): SIGHUP and POST /api/reload still work.
    watcher = null
  }

  return {
    reload,
    close() {
      if (timer) clearTimeout(timer)
      watcher?.close()
    },
  }
}
