import type { RedisClient } from '../redis/client.js'
import { createSyncedHash, type RedisStoreOptions } from '../redis/synced-hash.js'
import type { KeyedStore } from '../stores/keyed-store.js'
import { isKept, isRevocation, type Revocation, type RevocationStore } from './revocation-store.js'

/**
 * Revocations shared by every instance, as approvals are (redis/synced-hash.ts): a hash
 * (sandbox id → JSON) and a pub/sub channel announcing changes. Every instance keeps the set in memory
 * and reloads it on each announcement, so a revocation refuses new requests and closes open
 * connections everywhere within a second. While Redis is unreachable the last known set stays in
 * force and revoking fails (the admin API answers 503); revocations Redis lost (a flush, a restart
 * without persistence) stay in force and are written back.
 *
 * `file` (the file kept without Redis, file-revocations.ts) journals every revocation this instance
 * learns, wherever it was made: its entries are in force from start and written back to a Redis
 * that lacks them, so any one instance restarting against an emptied Redis restores them all, and
 * moving between the file and Redis un-revokes nothing.
 */
export function createRedisRevocationStore(
  client: RedisClient,
  opts: RedisStoreOptions,
  file?: KeyedStore<Revocation>,
): RevocationStore {
  return createSyncedHash(client, {
    ...opts,
    key: opts.key ?? 'portcullis:sandbox-revocations',
    channel: opts.channel ?? 'portcullis:sandbox-revocations:changed',
    isEntry: isRevocation,
    isLive: isKept,
    // HSETNX: the first revocation of an id stands (who, when, why).
    keepFirst: true,
    // Never un-revoked: one Redis lost is restored, not forgotten.
    addOnly: true,
    order: (a, b) => a.revoked_at.localeCompare(b.revoked_at),
    codes: {
      ok: 'PC_SANDBOX_REVOCATIONS_OK',
      failing: 'PC_SANDBOX_REVOCATIONS_REDIS',
      restored: 'PC_SANDBOX_REVOCATIONS_RESTORED',
    },
    names: { entries: 'sandbox revocations', changes: 'sandbox revocations' },
    ...(file !== undefined ? { journal: { store: file, failing: 'PC_SANDBOX_REVOCATIONS_FILE' } } : {}),
  })
}
