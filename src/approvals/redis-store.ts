import type { RedisClient } from '../redis/client.js'
import { createSyncedHash, type RedisStoreOptions } from '../redis/synced-hash.js'
import type { Approval } from '../policy/approvals.js'
import type { KeyedStore } from '../stores/keyed-store.js'
import { isActive, type ApprovalStore } from './store.js'

/**
 * Approvals shared by every instance (redis/synced-hash.ts): a Redis hash (id → JSON) plus a
 * pub/sub channel announcing changes, so an approval or a revocation applies everywhere within a
 * second. While Redis is unreachable the last known set stays in force and writes fail.
 *
 * A revocation moves the approval to `revoked:<id>` in the same hash until it would have expired,
 * and every instance remembers the revocations it reads. So what Redis forgets is put back either
 * way: a revoked approval that Redis holds again (restored from an older snapshot) is deleted again
 * (PC_APPROVALS_REVOKED_AGAIN), and approvals Redis lost (a flush, a restart without persistence)
 * that were not revoked are written back (PC_APPROVALS_RESTORED): an admin made them, and Redis
 * losing them is no decision to end them. As sandbox revocations are (redis-revocations.ts).
 *
 * `revokedFile` (file-store.ts, createRevokedApprovalsFile) journals every revocation this instance
 * learns, so they are remembered across restarts too: an older copy of Redis brings back no revoked
 * approval once every instance that saw the revocation has restarted.
 */
export function createRedisApprovalStore(
  client: RedisClient,
  opts: RedisStoreOptions,
  revokedFile?: KeyedStore<Approval>,
): ApprovalStore {
  const store = createSyncedHash(client, {
    ...opts,
    key: opts.key ?? 'portcullis:approvals',
    channel: opts.channel ?? 'portcullis:approvals:changed',
    // Only Portcullis writes this hash, so entries are not shape-checked: one is dropped when it has
    // expired, or has no expiry to read (isActive throws on a non-object, which drops it too).
    isEntry: (_v): _v is Approval => true,
    isLive: isActive,
    keepFirst: false,
    removedPrefix: 'revoked:',
    order: (a, b) => a.created_at.localeCompare(b.created_at),
    codes: {
      ok: 'PC_APPROVALS_REDIS_OK',
      failing: 'PC_APPROVALS_REDIS',
      restored: 'PC_APPROVALS_RESTORED',
      removedAgain: 'PC_APPROVALS_REVOKED_AGAIN',
    },
    names: { entries: 'approvals', changes: 'approval changes', removed: 'revoked' },
    ...(revokedFile !== undefined
      ? { journal: { store: revokedFile, failing: 'PC_APPROVALS_REVOCATIONS_FILE' as const } }
      : {}),
  })
  return { ...store, revoke: store.remove }
}
