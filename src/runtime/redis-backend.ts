import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { createRedisApprovalStore } from '../approvals/redis-store.js'
import type { ApprovalStore } from '../approvals/store.js'
import type { Approval } from '../policy/approvals.js'
import type { KeyedStore } from '../stores/keyed-store.js'
import { createRedisRevocationStore } from '../sandboxes/redis-revocations.js'
import type { Revocation, RevocationStore } from '../sandboxes/revocation-store.js'
import type { Limiter } from '../limits/limiter.js'
import { attachRedisSync, type RedisSync } from '../limits/redis-sync.js'
import { newInstanceId } from '../redis/instance-id.js'
import { redactRedisUrl } from '../redis/url.js'
import type { Bus } from '../telemetry/bus.js'
import type { MetricsSources } from '../telemetry/metrics.js'
import { findDecisionById, readEvents, type ReadEventsOptions } from '../telemetry/redis-events.js'
import { createRedisSink, type RedisSink } from '../telemetry/redis-sink.js'
import { createRemoteFeed, type RemoteFeed } from '../telemetry/redis-tail.js'
import type { StreamLookup } from './decision-lookup.js'
import type { EventQuery } from '../admin/event-query.js'

export interface RedisBackend {
  readonly sink: RedisSink
  readonly store: ApprovalStore
  /** Revoked sandbox credentials (SPEC §9), shared like approvals. */
  readonly sandboxStore: RevocationStore
  readonly sync: RedisSync
  /** Records other instances made, followed from the stream while a live view is open. */
  readonly remote: RemoteFeed
  readonly metrics: MetricsSources
  readonly lookup: StreamLookup
  readonly query: (q: EventQuery, opts?: ReadEventsOptions) => ReturnType<typeof readEvents>
  /** Give held rate-limit tokens back, stop following, close the store (the sink closes last, after the bus). */
  stop(): Promise<void>
}

export interface RedisBackendOptions {
  readonly url: string
  readonly stream: string
  readonly maxlen: number
  readonly log: Logger
  readonly bus: Bus
  readonly limiter: Limiter
  /** An agent's requests_per_minute in the policy in force (for agents learned from other instances). */
  readonly rpmOf: (agentId: string) => number | null
  /**
   * This instance's own files of what must outlive Redis losing data (none when unreadable): the
   * approvals it knows were revoked, and the sandbox revocations it knows.
   */
  readonly journals: {
    readonly revokedApprovals: KeyedStore<Approval> | undefined
    readonly sandboxRevocations: KeyedStore<Revocation> | undefined
  }
}

/**
 * With telemetry.redis.url: records stream to Redis, rate limits are shared and approvals live in
 * Redis. Nothing here waits for Redis to be up: the proxy serves while Redis is down and catches up
 * when it returns. One connection (the sink's) serves the limit sync and the approval store.
 */
export function connectRedisBackend(opts: RedisBackendOptions): RedisBackend {
  const { url, stream, maxlen, log } = opts
  const instance = newInstanceId()
  const sink = createRedisSink({ url, stream, maxlen, log, instance })
  opts.bus.subscribe(sink)
  // The two duplicate() signatures (Redis, Cluster) are incompatible as a union; both take no arguments here.
  const remote = createRemoteFeed({ connect: () => (sink.client as Redis).duplicate(), stream, self: instance, log })
  const sync = attachRedisSync(opts.limiter, sink.client, { log, instance, rpmOf: opts.rpmOf })
  const store = createRedisApprovalStore(sink.client, { log }, opts.journals.revokedApprovals)
  const sandboxStore = createRedisRevocationStore(sink.client, { log }, opts.journals.sandboxRevocations)
  log.info(
    { code: 'PC_REDIS_CONFIGURED', redis: redactRedisUrl(url), stream },
    'telemetry, rate limits and approvals use Redis',
  )
  return {
    sink,
    store,
    sandboxStore,
    sync,
    remote,
    metrics: {
      telemetryBacklog: () => sink.backlog(),
      telemetryDropped: () => sink.dropped(),
      limitsRedisFallback: () => sync.fallback(),
      limitsInstances: () => sync.instances(),
    },
    lookup: (id, madeAt) => findDecisionById(sink.client, stream, id, madeAt),
    query: (q, opts) => readEvents(sink.client, stream, q, opts),
    async stop() {
      await sync.stop()
      remote.stop()
      await store.close()
      await sandboxStore.close()
    },
  }
}
