import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parse, stringify } from 'yaml'
import { PortcullisError } from '../errors.js'
import type { Approval } from '../policy/approvals.js'
import { isActive, type ApprovalStore } from './store.js'

/**
 * approvals.yaml: a list of approval objects. Written atomically (temp file +
 * rename) so a crash never leaves half a file; expired entries are dropped on
 * every write. One instance only: several instances need the Redis store.
 */
export async function createFileApprovalStore(file: string, now: () => number = Date.now): Promise<ApprovalStore> {
  let list: Approval[] = []
  let text: string | null = null
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `cannot read approvals.file ${file}`, { cause: err })
  }
  if (text !== null) {
    let doc: { approvals?: Approval[] } | null
    try {
      doc = parse(text) as { approvals?: Approval[] } | null
    } catch (err) {
      throw new PortcullisError(
        'PC_ERR_CONFIG_UNREADABLE',
        `approvals.file ${file} is not YAML (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
        { cause: err },
      )
    }
    list = Array.isArray(doc?.approvals) ? doc.approvals.filter((a) => typeof a?.id === 'string') : []
  }
  const listeners: Array<() => void> = []
  let writing: Promise<void> = Promise.resolve()
  const persist = (): Promise<void> => {
    const snapshot = list
    writing = writing.then(async () => {
      await mkdir(dirname(file), { recursive: true })
      const tmp = `${file}.${process.pid}.tmp`
      await writeFile(
        tmp,
        `# Managed by portcullis (portcullis approve / the admin page). Edits here are read at start.\n${stringify({ approvals: snapshot })}`,
        { mode: 0o640 },
      )
      await rename(tmp, file)
    })
    return writing
  }
  const changed = (): void => {
    for (const l of listeners) l()
  }
  return {
    current: () => list,
    async add(a) {
      list = [...list.filter((x) => isActive(x, now())), a]
      changed()
      await persist()
    },
    async revoke(id) {
      const found = list.some((x) => x.id === id)
      list = list.filter((x) => x.id !== id && isActive(x, now()))
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
