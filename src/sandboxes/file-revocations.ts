import { dirname, join } from 'node:path'
import { createYamlFileStore } from '../stores/yaml-file.js'
import type { KeyedStore } from '../stores/keyed-store.js'
import { isKept, isRevocation, type Revocation } from './revocation-store.js'

/** `sandbox-revocations.yaml` in the approvals file's directory. */
export function revocationsFileFor(approvalsFile: string): string {
  return join(dirname(approvalsFile), 'sandbox-revocations.yaml')
}

/**
 * The revocation list as a YAML file (stores/yaml-file.ts: written atomically; entries past the
 * expiry of what they revoke are dropped at every write). Read at start only, so instances sharing
 * one file do not see each other's revocations: several instances need Redis (where this file is
 * still kept as each instance's journal, redis-revocations.ts).
 */
export function createFileRevocationStore(file: string, now: () => number = Date.now): Promise<KeyedStore<Revocation>> {
  return createYamlFileStore(file, {
    key: 'revoked',
    name: file,
    header: '# Managed by portcullis (portcullis sandbox revoke / DELETE /api/sandboxes/:id).',
    isEntry: isRevocation,
    isLive: isKept,
    keepFirst: true,
    // A revocation the file cannot hold still refuses the credential here until restart: failing
    // to save it must not leave a sandbox someone meant to stop working.
    inForceUnsaved: true,
    now,
  })
}
