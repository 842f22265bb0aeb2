import type { RedisClient } from '../redis/client.js'
import { createSyncedHash, type RedisStoreOptions } from '../redis/synced-hash.js'
import type { Approval } from '../policy/approvals.js'
import { isActive, type ApprovalStore } from './store.js'

/**
 * Approvals shared by every instance (redis/synced-hash.ts): a Redis hash (id → JSON) plus a
 * pub/sub channel announcing changes, so an approval or a revocation applies everywhere within a
 * second. While Redis is unreachable the last known set stays in force and writes fail.
 */
export function createRedisApprovalStore(client: RedisClient, opts: RedisStoreOptions): ApprovalStore {
  const store = createSyncedHash(client, {
    ...opts,
    key: opts.key ?? 'portcullis:approvals',
    channel: opts.channel ?? 'portcullis:approvals:changed',
    // Only Portcullis writes this hash, so entries are not shape-checked: one is dropped when it has
    // expired, or has no expiry to read (isActive throws on a non-object, which drops it too).
    isEntry: (_v): _v is Approval => true,
    isLive: isActive,
    keepFirst: false,
    order: (a, b) => a.created_at.localeCompare(b.created_at),
    codes: { ok: 'PC_APPROVALS_REDIS_OK', failing: 'PC_APPROVALS_REDIS' },
    names: { entries: 'approvals', changes: 'approval changes' },
  })
  return { ...store, revoke: store.remove }
}
