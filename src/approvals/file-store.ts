import type { Approval } from '../policy/approvals.js'
import { createYamlFileStore } from '../stores/yaml-file.js'
import { isActive, type ApprovalStore } from './store.js'

/**
 * approvals.yaml: a list of approval objects (stores/yaml-file.ts: written atomically, expired
 * entries dropped on every write). One instance only: several instances need the Redis store.
 */
export async function createFileApprovalStore(file: string, now: () => number = Date.now): Promise<ApprovalStore> {
  const store = await createYamlFileStore(file, {
    key: 'approvals',
    name: `approvals.file ${file}`,
    header: '# Managed by portcullis (portcullis approve / the admin page). Edits here are read at start.',
    isEntry: (v): v is Approval => typeof (v as { id?: unknown } | null | undefined)?.id === 'string',
    isLive: isActive,
    keepFirst: false,
    now,
  })
  return { ...store, revoke: store.remove }
}
