import { dirname, join } from 'node:path'
import type { Approval } from '../policy/approvals.js'
import type { KeyedStore } from '../stores/keyed-store.js'
import { createYamlFileStore } from '../stores/yaml-file.js'
import { isActive, type ApprovalStore } from './store.js'

/**
 * approvals.yaml: a list of approval objects (stores/yaml-file.ts: written atomically, expired
 * entries dropped on every write). Read at start only: instances sharing one file do not see each
 * other's approvals or revocations, so several instances need the Redis store.
 */
export async function createFileApprovalStore(file: string, now: () => number = Date.now): Promise<ApprovalStore> {
  const store = await createYamlFileStore(file, {
    key: 'approvals',
    name: `approvals.file ${file}`,
    header: '# Managed by portcullis (portcullis approve / the admin page). Edits here are read at start.',
    isEntry: isStoredApproval,
    isLive: isActive,
    keepFirst: false,
    now,
  })
  return { ...store, revoke: store.remove }
}

const isStoredApproval = (v: unknown): v is Approval =>
  typeof (v as { id?: unknown } | null | undefined)?.id === 'string'

/** `approval-revocations.yaml` in the approvals file's directory. */
export function revokedApprovalsFileFor(approvalsFile: string): string {
  return join(dirname(approvalsFile), 'approval-revocations.yaml')
}

/**
 * With Redis, the approvals this instance knows were revoked (wherever that was done), each until it
 * would have expired (redis-store.ts): what a Redis restored from an older copy would bring back once
 * every instance that saw the revocation has restarted.
 */
export function createRevokedApprovalsFile(file: string, now: () => number = Date.now): Promise<KeyedStore<Approval>> {
  return createYamlFileStore(file, {
    key: 'revoked',
    name: file,
    header: '# Managed by portcullis with Redis: approvals revoked, kept until they would have expired.',
    isEntry: isStoredApproval,
    isLive: isActive,
    keepFirst: true,
    now,
  })
}
