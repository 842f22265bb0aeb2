import { lstatSync, readlinkSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname, join, parse, resolve, sep } from 'node:path'
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
/** Links followed in one resolution before giving up (the kernel's own bound, ELOOP, is 40). */
const MAX_LINK_HOPS = 40

/** A name in a directory whose change can change what the watched path reads. */
interface WatchPoint {
  readonly dir: string
  readonly name: string
}

/**
 * Every name the path's content depends on: each symlink met while resolving it (the file itself,
 * or a directory on the way, like a Kubernetes ConfigMap's `..data`) and the file it ends at. A
 * path that does not exist (yet) yields the first missing name, in the deepest directory that does.
 */
function watchPoints(file: string): WatchPoint[] {
  const points: WatchPoint[] = [{ dir: dirname(resolve(file)), name: basename(file) }]
  let pending = resolve(file)
  for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
    const parts = pending.split(sep).filter(Boolean)
    let dir = parse(pending).root
    let link: { at: string; rest: string[] } | null = null
    for (let i = 0; i < parts.length && link === null; i++) {
      const name = parts[i] as string
      const here = join(dir, name)
      let stat
      try {
        stat = lstatSync(here)
      } catch {
        points.push({ dir, name })
        return points
      }
      if (stat.isSymbolicLink()) {
        points.push({ dir, name })
        try {
          link = { at: resolve(dir, readlinkSync(here)), rest: parts.slice(i + 1) }
        } catch {
          return points
        }
      } else dir = here
    }
    if (link === null) {
      points.push({ dir: dirname(pending), name: basename(pending) })
      return points
    }
    pending = join(link.at, ...link.rest)
  }
  return points
}

/**
 * Calls `onChange` (debounced) when the file is edited. Watches the file's directory, not the file:
 * editors that save by writing a new file and renaming it over the old one replace the inode, and a
 * watch on the file itself would go deaf after the first such save. A path reached through symlinks
 * (`ln -s`, a Kubernetes ConfigMap's `config.yaml -> ..data/config.yaml` with `..data` swapped
 * atomically) is watched at every link and at the file it ends at, and those are worked out again
 * after each change, since a swapped link points somewhere new. Returns the function that stops it.
 */
export function watchConfigFile(file: string, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | null = null
  let stopped = false
  /** One watcher per directory, with the names in it that matter. */
  const watchers = new Map<string, { watcher: FSWatcher; names: Set<string> }>()
  const changed = (): void => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      if (stopped) return
      rewatch()
      onChange()
    }, DEBOUNCE_MS)
  }
  const rewatch = (): void => {
    const wanted = new Map<string, Set<string>>()
    for (const { dir, name } of watchPoints(file)) wanted.set(dir, (wanted.get(dir) ?? new Set()).add(name))
    for (const [dir, w] of watchers)
      if (!wanted.has(dir)) {
        w.watcher.close()
        watchers.delete(dir)
      }
    for (const [dir, names] of wanted) {
      const have = watchers.get(dir)
      if (have) {
        have.names = names
        continue
      }
      try {
        const entry = { watcher: watch(dir, { persistent: false }), names }
        entry.watcher.on('change', (_event, name) => {
          if (name === null || entry.names.has(name.toString())) changed()
        })
        // A watched directory removed (an old ConfigMap version): look again where the path leads now.
        entry.watcher.on('error', () => {
          entry.watcher.close()
          if (watchers.get(dir) === entry) watchers.delete(dir)
          changed()
        })
        watchers.set(dir, entry)
      } catch {
        // No watcher (e.g. the directory vanished): SIGHUP and POST /api/reload still work.
      }
    }
  }
  rewatch()
  return () => {
    stopped = true
    if (timer) clearTimeout(timer)
    for (const w of watchers.values()) w.watcher.close()
    watchers.clear()
  }
}
