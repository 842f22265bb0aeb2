import type { Server } from 'node:http'
import { approvalRoutes } from '../admin/routes/approvals.js'
import { eventRoutes } from '../admin/routes/events.js'
import { explainRoutes } from '../admin/routes/explain.js'
import { suggestRoutes } from '../admin/routes/suggest.js'
import { healthRoutes } from '../admin/routes/health.js'
import { metricsRoutes } from '../admin/routes/metrics.js'
import { pageRoutes } from '../admin/routes/page.js'
import { reloadRoutes } from '../admin/routes/reload.js'
import { sandboxRoutes } from '../admin/routes/sandboxes.js'
import { sandboxProxy } from '../identity/sandbox-issue.js'
import type { RevocationStore } from '../sandboxes/revocation-store.js'
import type { AddressInfo } from 'node:net'
import type { Route } from '../admin/server.js'
import type { ApprovalStore } from '../approvals/store.js'
import type { ApprovalIndex } from '../policy/approvals.js'
import type { DecisionRecord } from '../telemetry/events.js'
import type { Parts } from './parts.js'
import type { PolicyState } from './policy-state.js'
import type { RedisBackend } from './redis-backend.js'
import { missingCredentials } from './startup-checks.js'

/**
 * How long a sandbox revocation may look in the Redis stream for a record of the credential (its
 * agent and expiry) before it is stored without one: it must land within a second (SPEC §9) however
 * long the stream, and without a record it is only kept longer (sandboxes.ts).
 */
const SEEN_LOOKUP_BUDGET_MS = 300
import { instanceMetrics } from './worker-metrics.js'

export interface AdminRouteDeps {
  readonly parts: Parts
  readonly policy: PolicyState
  readonly proxyServer: Server
  readonly redis: RedisBackend | null
  readonly store: ApprovalStore
  readonly sandboxStore: RevocationStore
  readonly findDecision: (requestId: string) => Promise<DecisionRecord | null>
  readonly approvals: () => ApprovalIndex
  readonly env: NodeJS.ProcessEnv
}

const startedAt = (): string => new Date().toISOString()

/** Redis's answer when it refuses the credentials: the URL's password (or user) is wrong, or missing. */
const REDIS_AUTH_REFUSED = /^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i

/**
 * The /healthz warning while limits are local, with the cause when the connection said one: a
 * refused password is a configuration to fix, not a network to wait for.
 */
function redisFallbackWarning(reason: string | null): string {
  const effect =
    'rate limits are per instance, approvals and sandbox revocations cannot be made, records wait in memory (PC_LIMITS_LOCAL_FALLBACK)'
  if (reason !== null && REDIS_AUTH_REFUSED.test(reason))
    return `Redis refuses the credentials of telemetry.redis.url (${reason}): ${effect}`
  return reason === null ? `Redis unreachable: ${effect}` : `Redis unreachable (${reason}): ${effect}`
}

/** Every admin API route of one instance (SPEC §5), in the order the router tries them. */
export function adminRoutes(d: AdminRouteDeps): Route[] {
  const { parts, policy } = d
  const since = startedAt()
  return [
    ...healthRoutes({
      generation: policy.generation,
      configError: policy.configError,
      warnings: () => [
        ...missingCredentials(policy.current(), d.env),
        ...(policy.restartNeeded().length > 0
          ? [
              `changed in the config but read only at start, so still as the process started until a restart: ${policy.restartNeeded().join(', ')} (PC_CONFIG_RESTART_NEEDED)`,
            ]
          : []),
        ...(d.redis !== null && d.redis.sync.fallback() ? [redisFallbackWarning(d.redis.sink.downReason())] : []),
        ...(d.sandboxStore.loaded()
          ? []
          : [
              'sandbox revocations not read yet (Redis unreachable since start): sandbox credentials are refused (revocations_unknown) until they are',
            ]),
      ],
      ready: () => d.proxyServer.listening,
      startedAt: since,
    }),
    ...metricsRoutes(instanceMetrics(parts.metrics.registry, parts.metrics)),
    ...eventRoutes({
      ring: parts.ring,
      bus: parts.bus,
      remote: d.redis?.remote ?? null,
      redis: d.redis ? { query: d.redis.query } : null,
      onStreamDrop: (n) => parts.metrics.countStreamDropped(n),
    }),
    ...explainRoutes(policy.current, d.approvals),
    ...suggestRoutes({
      config: policy.current,
      ring: parts.ring,
      redis: d.redis ? { query: d.redis.query } : null,
      env: d.env,
      onWorkerError: (err) =>
        parts.log.error({ code: 'PC_ERR_INTERNAL', err }, 'the suggest worker failed; its suggestion was not made'),
    }),
    ...approvalRoutes({
      store: d.store,
      findDecision: d.findDecision,
      bus: parts.bus,
      log: parts.log.child({ subsystem: 'approvals' }),
      defaultTtlMs: () => policy.current().approvals.defaultTtlMs,
    }),
    ...sandboxRoutes({
      config: policy.current,
      keys: parts.sandboxes.keys,
      store: d.sandboxStore,
      proxy: () => {
        const cfg = policy.current()
        return sandboxProxy(cfg.identity, cfg.listen, (d.proxyServer.address() as AddressInfo | null)?.port ?? 0)
      },
      recent: async (since) => {
        if (d.redis !== null) {
          try {
            return { records: (await d.redis.query({ limit: 5000, since, anySandbox: true })).records, source: 'redis' }
          } catch {
            // Redis is down: this instance's memory still knows what it saw.
          }
        }
        const records = parts.ring
          .snapshot()
          .filter((r) => r.event === 'decision' && r.sandbox !== undefined && Date.parse(r.time) >= +since)
        return { records, source: 'memory' }
      },
      seen: async (id, since) => {
        const mine = parts.ring
          .snapshot()
          .find((r): r is DecisionRecord => r.event === 'decision' && r.sandbox === id && Date.parse(r.time) >= +since)
        if (mine !== undefined || d.redis === null) return mine ?? null
        try {
          const found = await d.redis.query({ limit: 1, since, sandbox: id }, { budgetMs: SEEN_LOOKUP_BUDGET_MS })
          return found.records.find((r): r is DecisionRecord => r.event === 'decision') ?? null
        } catch {
          return null
        }
      },
      log: parts.log.child({ subsystem: 'sandboxes' }),
    }),
    ...reloadRoutes(policy.reload, policy.generation),
    ...pageRoutes(),
  ]
}
