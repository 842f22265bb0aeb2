import type { Server } from 'node:http'
import { approvalRoutes } from '../admin/routes/approvals.js'
import { eventRoutes } from '../admin/routes/events.js'
import { explainRoutes } from '../admin/routes/explain.js'
import { healthRoutes } from '../admin/routes/health.js'
import { metricsRoutes } from '../admin/routes/metrics.js'
import { pageRoutes } from '../admin/routes/page.js'
import { reloadRoutes } from '../admin/routes/reload.js'
import type { Route } from '../admin/server.js'
import type { ApprovalStore } from '../approvals/store.js'
import type { ApprovalIndex } from '../policy/approvals.js'
import type { DecisionRecord } from '../telemetry/events.js'
import type { Parts } from './parts.js'
import type { PolicyState } from './policy-state.js'
import type { RedisBackend } from './redis-backend.js'
import { missingCredentials } from './startup-checks.js'

export interface AdminRouteDeps {
  readonly parts: Parts
  readonly policy: PolicyState
  readonly proxyServer: Server
  readonly redis: RedisBackend | null
  readonly store: ApprovalStore
  readonly findDecision: (requestId: string) => Promise<DecisionRecord | null>
  readonly approvals: () => ApprovalIndex
  readonly env: NodeJS.ProcessEnv
}

const startedAt = (): string => new Date().toISOString()

/** Every admin API route of one instance (SPEC §5), in the order the router tries them. */
export function adminRoutes(d: AdminRouteDeps): Route[] {
  const { parts, policy } = d
  const since = startedAt()
  return [
    ...healthRoutes({
      generation: policy.generation,
      configError: policy.configError,
      warnings: () => missingCredentials(policy.current(), d.env),
      ready: () => d.proxyServer.listening,
      startedAt: since,
    }),
    ...metricsRoutes(parts.metrics),
    ...eventRoutes({
      ring: parts.ring,
      bus: parts.bus,
      remote: d.redis?.remote ?? null,
      redis: d.redis ? { query: d.redis.query } : null,
      onStreamDrop: (n) => parts.metrics.countStreamDropped(n),
    }),
    ...explainRoutes(policy.current, d.approvals),
    ...approvalRoutes({
      store: d.store,
      findDecision: d.findDecision,
      bus: parts.bus,
      defaultTtlMs: policy.current().approvals.defaultTtlMs,
    }),
    ...reloadRoutes(policy.reload, policy.generation),
    ...pageRoutes(),
  ]
}
