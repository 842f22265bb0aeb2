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
  let writing: Promise<void> = Promise.resolve()
  const persist = (): Promise<void> => {
    const snapshot = list
    const next = writing.then(async () => {
      await mkdir(dirname(file), { recursive: true })
      const tmp = `${file}.${process.pid}.tmp`
      await writeFile(tmp, `${opts.header}\n${stringify({ [opts.key]: snapshot })}`, { mode: 0o640 })
      await rename(tmp, file)
    })
    // One failed write (a full disk) is that write's caller's error; the next write still runs.
    writing = next.catch(() => undefined)
    return next
  }
  return {
    current: () => list,
    loaded: () => true,
    async add(entry) {
      if (opts.keepFirst && list.some((x) => x.id === entry.id)) return
      list = [...list.filter((x) => opts.isLive(x, now())), entry]
      changed()
      await persist()
    },
    async remove(id) {
      const found = list.some((x) => x.id === id)
      list = list.filter((x) => x.id !== id && opts.isLive(x, now()))
      changed()
      await persist()
      return found
    },
    onChange(listener) {
      listeners.push(listener)
    },
    async close() {
      await writing
    },
  }
}
