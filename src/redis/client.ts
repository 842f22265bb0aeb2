import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis'
import { clusterTarget, isClusterUrl } from './url.js'

/**
 * The one Redis client factory: every connection Portcullis opens (telemetry sink, limit sync,
 * approval store, stream tail) fails fast instead of queueing inside ioredis, and no command waits
 * longer than COMMAND_TIMEOUT_MS for its reply.
 */
export type RedisClient = Redis | Cluster

/** No Redis command waits longer than this for its reply (blocking reads use a shorter BLOCK). */
export const COMMAND_TIMEOUT_MS = 3000

/** `min(200·n, 2000)` ms, forever: Redis may come back at any time. */
export function retryDelayMs(times: number): number {
  return Math.min(200 * times, 2000)
}

/** Build an ioredis client (standalone or cluster) with fail-fast options: nothing piles up inside ioredis. */
export function createRedisClient(url: string, cluster = false): RedisClient {
  // commandTimeout: a Redis that accepts connections but stops answering (paused, swapping) must not hang
  // the admin API or the approval store; a timed-out command fails like a disconnected one.
  // autoResendUnfulfilledCommands off: a command that timed out stays in ioredis's queue and would be sent
  // again on the next connection, on top of the caller's own retry (a duplicate telemetry batch per hang).
  const base: RedisOptions = {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: retryDelayMs,
    commandTimeout: COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
  }
  if (!cluster && !isClusterUrl(url)) {
    const client = new Redis(url, base)
    // A database index the server does not have (`/99` on a default server): ioredis reports the
    // SELECT's error and carries on in database 0, so records, approvals and limits would go where
    // nobody reads them. Stop instead: Redis stays down (records wait in the buffer, counted when they
    // overflow), and the down line says why. Fixing the URL takes a restart.
    client.on('error', (err: Error) => {
      if (/DB index is out of range|invalid DB index/i.test(err.message)) client.disconnect()
    })
    return client
  }
  const target = clusterTarget(url)
  const nodes: ClusterNode[] = target.seeds.map((s) => ({ host: s.host, port: s.port }))
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
    ...(target.tls ? { tls: {} } : {}),
  }
  if (target.username !== undefined) redisOptions.username = target.username
  if (target.password !== undefined) redisOptions.password = target.password
  // No ready check: ioredis sends it through the (disabled) offline queue and would never become ready.
  // A cluster that is not serving yet answers CLUSTERDOWN, which the sink retries like any reply error.
  return new Cluster(nodes, {
    lazyConnect: false,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    clusterRetryStrategy: retryDelayMs,
    redisOptions,
  })
}
