import type { Redis } from 'ioredis'
import type { RedisClient } from '../redis/client.js'
import type { Logger } from 'pino'
import type { Approval } from '../policy/approvals.js'
import { isActive, type ApprovalStore } from './store.js'

export interface RedisApprovalOptions {
  readonly key?: string
  readonly channel?: string
  /** Full resync period: a safety net for changes published while this instance was disconnected. */
  readonly resyncMs?: number
  readonly log: Logger
  readonly now?: () => number
}

/**
 * Approvals shared by every instance: a Redis hash (id → JSON) plus a pub/sub
 * channel announcing changes. Each instance keeps the whole set in memory
 * (the data path reads it synchronously) and reloads it on every announcement,
 * so an approval or a revocation applies everywhere within a second. While
 * Redis is unreachable the last known set stays in force and writes fail.
 */
export function createRedisApprovalStore(client: RedisClient, opts: RedisApprovalOptions): ApprovalStore {
  const key = opts.key ?? 'portcullis:approvals'
  const channel = opts.channel ?? 'portcullis:approvals:changed'
  const now = opts.now ?? Date.now
  let list: readonly Approval[] = []
  const listeners: Array<() => void> = []
  const changed = (): void => {
    for (const l of listeners) l()
  }
  const refresh = async (): Promise<void> => {
    const all = await client.hgetall(key)
    const next: Approval[] = []
    const expired: string[] = []
    for (const [id, json] of Object.entries(all)) {
      try {
        const a = JSON.parse(json) as Approval
        if (isActive(a, now())) next.push(a)
        else expired.push(id)
      } catch {
        expired.push(id)
      }
    }
    if (expired.length > 0) await client.hdel(key, ...expired)
    next.sort((a, b) => a.created_at.localeCompare(b.created_at))
    list = next
    changed()
  }
  // Warn once per outage, not at every resync while Redis is away.
  let failing = false
  const safeRefresh = (): void => {
    refresh().then(
      () => {
        if (failing) opts.log.info({ code: 'PC_APPROVALS_REDIS_OK' }, 'approvals read from Redis again')
        failing = false
      },
      (err: unknown) => {
        if (!failing)
          opts.log.warn(
            { code: 'PC_APPROVALS_REDIS', err: String(err) },
            'could not refresh approvals from Redis; keeping the last known set',
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
  // Redis may be down at start or restart later: (re)subscribe and resync whenever the subscriber
  // becomes ready (ioredis also restores the subscription; SUBSCRIBE twice is harmless), and resync
  // when the command connection comes back, in case announcements were missed meanwhile.
  sub.on('ready', () => {
    sub
      .subscribe(channel)
      .then(safeRefresh, (err: unknown) =>
        opts.log.warn(
          { code: 'PC_APPROVALS_REDIS', err: String(err) },
          'could not subscribe to approval changes; retrying on reconnect',
        ),
      )
  })
  client.on('ready', safeRefresh)
  if (client.status === 'ready') safeRefresh()
  const timer = setInterval(safeRefresh, opts.resyncMs ?? 5000)
  timer.unref()
  return {
    current: () => list,
    async add(a) {
      await client.hset(key, a.id, JSON.stringify(a))
      await client.publish(channel, a.id)
      await refresh()
    },
    async revoke(id) {
      const removed = await client.hdel(key, id)
      await client.publish(channel, id)
      await refresh()
      return removed > 0
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
