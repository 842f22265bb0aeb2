import type { Redis } from 'ioredis'
import type { RedisClient } from '../redis/client.js'
import type { Logger } from 'pino'
import { isKept, isRevocation, type Revocation, type RevocationStore } from './revocation-store.js'

export interface RedisRevocationOptions {
  readonly key?: string
  readonly channel?: string
  /** Full resync period: a safety net for announcements missed while disconnected. */
  readonly resyncMs?: number
  readonly log: Logger
  readonly now?: () => number
}

/**
 * Revocations shared by every instance, as approvals are (approvals/redis-store.ts): a hash
 * (sandbox id → JSON) and a pub/sub channel announcing changes. Every instance keeps the set in memory
 * and reloads it on each announcement, so a revocation refuses new requests and closes open
 * connections everywhere within a second. While Redis is unreachable the last known set stays in
 * force and revoking fails (the admin API answers 503).
 */
export function createRedisRevocationStore(client: RedisClient, opts: RedisRevocationOptions): RevocationStore {
  const key = opts.key ?? 'portcullis:sandbox-revocations'
  const channel = opts.channel ?? 'portcullis:sandbox-revocations:changed'
  const now = opts.now ?? Date.now
  let list: readonly Revocation[] = []
  const listeners: Array<() => void> = []
  const refresh = async (): Promise<void> => {
    const all = await client.hgetall(key)
    const next: Revocation[] = []
    const lapsed: string[] = []
    for (const [id, json] of Object.entries(all)) {
      let r: unknown
      try {
        r = JSON.parse(json)
      } catch {
        r = null
      }
      if (isRevocation(r) && isKept(r, now())) next.push(r)
      else lapsed.push(id)
    }
    if (lapsed.length > 0) await client.hdel(key, ...lapsed)
    next.sort((a, b) => a.revoked_at.localeCompare(b.revoked_at))
    list = next
    for (const l of listeners) l()
  }
  let failing = false
  const safeRefresh = (): void => {
    refresh().then(
      () => {
        if (failing) opts.log.info({ code: 'PC_SANDBOX_REVOCATIONS_OK' }, 'sandbox revocations read from Redis again')
        failing = false
      },
      (err: unknown) => {
        if (!failing)
          opts.log.warn(
            { code: 'PC_SANDBOX_REVOCATIONS_REDIS', err: String(err) },
            'could not refresh sandbox revocations from Redis; keeping the last known set',
          )
        failing = true
      },
    )
  }
  // The two duplicate() signatures (Redis, Cluster) are incompatible as a union; both take no arguments here.
  const sub = (client as Redis).duplicate()
  sub.on('error', () => undefined)
  sub.on('message', (ch: string) => {
    if (ch === channel) safeRefresh()
  })
  sub.on('ready', () => {
    sub
      .subscribe(channel)
      .then(safeRefresh, (err: unknown) =>
        opts.log.warn(
          { code: 'PC_SANDBOX_REVOCATIONS_REDIS', err: String(err) },
          'could not subscribe to sandbox revocations; retrying on reconnect',
        ),
      )
  })
  client.on('ready', safeRefresh)
  if (client.status === 'ready') safeRefresh()
  const timer = setInterval(safeRefresh, opts.resyncMs ?? 5000)
  timer.unref()
  return {
    current: () => list,
    async add(r) {
      // HSETNX: the first revocation of an id stands (who, when, why).
      await client.hsetnx(key, r.id, JSON.stringify(r))
      await client.publish(channel, r.id)
      await refresh()
    },
    onChange(listener) {
      listeners.push(listener)
    },
    async close() {
      clearInterval(timer)
      client.off('ready', safeRefresh)
      sub.disconnect()
    },
  }
}
