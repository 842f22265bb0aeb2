import { randomUUID } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parse, stringify } from 'yaml'
import { PortcullisError } from '../errors.js'
import type { EntryRules, KeyedEntry, KeyedStore } from './keyed-store.js'

export interface YamlFileStoreOptions<T extends KeyedEntry> extends EntryRules<T> {
  /** The top-level key holding the list (`approvals:`). */
  readonly key: string
  /** The file as error messages name it (`approvals.file /etc/portcullis/approvals.yaml`). */
  readonly name: string
  /** The comment line written above the list. */
  readonly header: string
  readonly now?: () => number
  /**
   * A change the file could not take is still in force in memory (until restart), and the write's
   * error is still thrown: for what fails closed only when applied (a revocation), not (an approval).
   */
  readonly inForceUnsaved?: boolean
}

/**
 * A list of entries as a YAML file (`key: [ … ]`), read once at start and written atomically
 * (temp file + rename) so a crash never leaves half a file; lapsed entries are dropped at every
 * write. One instance only: several instances need the Redis store.
 */
export async function createYamlFileStore<T extends KeyedEntry>(
  file: string,
  opts: YamlFileStoreOptions<T>,
): Promise<KeyedStore<T>> {
  const now = opts.now ?? Date.now
  let list: T[] = []
  let text: string | null = null
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `cannot read ${opts.name}`, { cause: err })
  }
  if (text !== null) {
    let doc: Record<string, unknown> | null
    try {
      doc = parse(text) as Record<string, unknown> | null
    } catch (err) {
      throw new PortcullisError(
        'PC_ERR_CONFIG_UNREADABLE',
        `${opts.name} is not YAML (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
        { cause: err },
      )
    }
    const entries = doc?.[opts.key]
    list = Array.isArray(entries) ? entries.filter(opts.isEntry) : []
  }
  const listeners: Array<() => void> = []
  const changed = (): void => {
    for (const l of listeners) l()
  }
  let writing: Promise<unknown> = Promise.resolve()
  const write = async (entries: readonly T[]): Promise<void> => {
    try {
      await mkdir(dirname(file), { recursive: true })
      // Not the pid alone: instances in containers are all pid 1, and may share the directory.
      const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`
      await writeFile(tmp, `${opts.header}\n${stringify({ [opts.key]: entries })}`, { mode: 0o640 })
      await rename(tmp, file)
    } catch (err) {
      // Node's message names the OS error and the path: `EACCES: permission denied, open '…'`.
      const why = err instanceof Error ? err.message : String(err)
      throw new PortcullisError('PC_ERR_STORE_WRITE', `cannot write ${opts.name} (${why})`, { cause: err })
    }
  }
  /**
   * One change at a time, in call order: the list in memory takes the new one only once the file
   * holds it, so a write that fails (a full disk, a directory the proxy may not write) changes
   * nothing, as the admin API then answers (unless inForceUnsaved). The next change still runs.
   */
  const commit = <R>(change: (entries: T[]) => { readonly next: T[]; readonly result: R }): Promise<R> => {
    const done = writing.then(async () => {
      const { next, result } = change(list)
      if (next === list) return result
      try {
        await write(next)
      } catch (err) {
        if (opts.inForceUnsaved === true) {
          list = next
          changed()
        }
        throw err
      }
      list = next
      changed()
      return result
    })
    writing = done.catch(() => undefined)
    return done
  }
  return {
    current: () => list,
    loaded: () => true,
    add(entry) {
      return commit((entries) => {
        if (opts.keepFirst && entries.some((x) => x.id === entry.id)) return { next: entries, result: undefined }
        // Otherwise the new entry replaces the one of its id (an approval's expiry extended), as HSET does in Redis.
        const kept = entries.filter((x) => x.id !== entry.id && opts.isLive(x, now()))
        return { next: [...kept, entry], result: undefined }
      })
    },
    remove(id) {
      return commit((entries) => ({
        next: entries.filter((x) => x.id !== id && opts.isLive(x, now())),
        result: entries.some((x) => x.id === id),
      }))
    },
    onChange(listener) {
      listeners.push(listener)
    },
    async close() {
      await writing
    },
  }
}
