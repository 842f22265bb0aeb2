import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parse, stringify } from 'yaml'
import { PortcullisError } from '../errors.js'
import { isKept, isRevocation, type Revocation, type RevocationStore } from './revocation-store.js'

/** `sandbox-revocations.yaml` in the approvals file's directory. */
export function revocationsFileFor(approvalsFile: string): string {
  return join(dirname(approvalsFile), 'sandbox-revocations.yaml')
}

/**
 * The revocation list as a YAML file, written atomically (temp file + rename); entries past the
 * expiry of what they revoke are dropped at every write. One instance only: several need Redis.
 */
export async function createFileRevocationStore(file: string, now: () => number = Date.now): Promise<RevocationStore> {
  let list: Revocation[] = []
  let text: string | null = null
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `cannot read ${file}`, { cause: err })
  }
  if (text !== null) {
    let doc: { revoked?: unknown } | null
    try {
      doc = parse(text) as { revoked?: unknown } | null
    } catch (err) {
      throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `${file} is not YAML`, { cause: err })
    }
    list = Array.isArray(doc?.revoked) ? doc.revoked.filter(isRevocation) : []
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
        `# Managed by portcullis (portcullis sandbox revoke / DELETE /api/sandboxes/:id).\n${stringify({ revoked: snapshot })}`,
        { mode: 0o640 },
      )
      await rename(tmp, file)
    })
    return writing
  }
  return {
    current: () => list,
    async add(r) {
      if (list.some((x) => x.id === r.id)) return
      list = [...list.filter((x) => isKept(x, now())), r]
      for (const l of listeners) l()
      await persist()
    },
    onChange(listener) {
      listeners.push(listener)
    },
    async close() {
      await writing
    },
  }
}
