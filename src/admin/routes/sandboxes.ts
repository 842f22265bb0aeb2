import type { Logger } from 'pino'
import { z } from 'zod'
import type { RuntimeConfig } from '../../config/types.js'
import { parseDurationMs } from '../../config/duration.js'
import { MAX_SANDBOX_TTL_MS } from '../../config/schema.js'
import { issueSandbox, type SandboxKeys, type SandboxProxy } from '../../identity/sandbox-issue.js'
import { CLOCK_SKEW_S, idTimeMs, SANDBOX_ID } from '../../identity/sandbox-token.js'
import type { RevocationStore, Revocation } from '../../sandboxes/revocation-store.js'
import { summarizeSandboxes } from '../../sandboxes/seen.js'
import type { DecisionRecord, TelemetryRecord } from '../../telemetry/events.js'
import { actorParam, idParam, readBody } from '../route-input.js'
import { sendJson, type Route } from '../server.js'
import { sendStoreFailure } from '../store-failure.js'

export interface SandboxRouteDeps {
  readonly config: () => RuntimeConfig
  readonly keys: () => SandboxKeys
  readonly store: RevocationStore
  /** Where sandboxes reach the proxy (for proxy_url), and a warning when that is a guess. */
  readonly proxy: () => SandboxProxy
  /** Decision records of sandboxes since a time: the Redis stream when configured, else the ring. */
  readonly recent: (since: Date) => Promise<{ records: TelemetryRecord[]; source: 'redis' | 'memory' }>
  /**
   * A decision record of sandbox `id` since a time (its agent, its expiry), or null when none is found
   * quickly: this instance's memory first, then a short look at the Redis stream.
   */
  readonly seen: (id: string, since: Date) => Promise<DecisionRecord | null>
  readonly log: Logger
  readonly now?: () => number
}

const IssueBody = z.strictObject({
  agent: z.string().min(1).max(100),
  ttl: z.string().max(16),
  // Not z.record, which drops a `__proto__` key silently: the object as parsed, for labelProblem to judge every key.
  labels: z
    .custom<Record<string, string>>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        !Array.isArray(v) &&
        Object.values(v).every((x) => typeof x === 'string'),
      'labels must be an object of strings',
    )
    .default({}),
  /** Who asked, for the log line (the CLI sends the user). */
  by: z.string().min(1).max(100).optional(),
})

const LIST_WINDOW_MS = 24 * 3600_000

/**
 * POST /api/sandboxes (issue), DELETE /api/sandboxes/:id[?by=NAME&reason=TEXT] (revoke),
 * GET /api/sandboxes (seen in the last 24 h, and revoked). Issuing needs the signing key in the
 * proxy's environment; the token is in the answer only, never stored or logged.
 */
export function sandboxRoutes(deps: SandboxRouteDeps): Route[] {
  const now = deps.now ?? Date.now
  return [
    {
      method: 'GET',
      path: '/api/sandboxes',
      handler: async (_req, res) => {
        const t = now()
        const { records, source } = await deps.recent(new Date(t - LIST_WINDOW_MS))
        const revoked = deps.store.current().filter((r) => Date.parse(r.expires_at) > t)
        sendJson(res, 200, { sandboxes: summarizeSandboxes(records, revoked), revoked, source })
      },
    },
    {
      method: 'POST',
      path: '/api/sandboxes',
      handler: async (req, res) => {
        const body = await readBody(req, res, IssueBody, { labels: 'bad_labels' })
        if (body === null) return
        const key = deps.keys().signing
        if (key === null)
          return sendJson(res, 503, {
            error: 'no_signing_key',
            message: `the proxy has no usable signing key: ${deps.keys().problems.join('; ')}`,
          })
        const cfg = deps.config()
        const out = issueSandbox(
          cfg.policy,
          cfg.identity.maxSandboxTtlMs,
          key,
          { agent: body.agent, ttlMs: parseDurationMs(body.ttl) ?? 0, labels: body.labels },
          deps.proxy(),
          now(),
        )
        if (!out.ok)
          return sendJson(res, out.error === 'unknown_agent' ? 404 : 400, { error: out.error, message: out.message })
        const s = out.sandbox
        deps.log.info(
          {
            code: 'PC_SANDBOX_ISSUED',
            agent: s.agent,
            sandbox: s.id,
            labels: s.labels,
            expires_at: s.expires_at,
            by: body.by ?? 'admin',
          },
          'sandbox credential issued',
        )
        sendJson(res, 201, s)
      },
    },
    {
      method: 'DELETE',
      path: '/api/sandboxes/',
      handler: async (_req, res, url) => {
        const id = idParam(url, '/api/sandboxes/')?.toUpperCase() ?? ''
        if (!SANDBOX_ID.test(id))
          return sendJson(res, 400, {
            error: 'bad_id',
            message: 'a sandbox id is the 26-character id it was issued with',
          })
        const t = now()
        // A credential is never valid before its id's time (less the clock skew): an id dated later
        // names none yet, and a revocation of it would be kept until that date plus max_sandbox_ttl.
        if (idTimeMs(id) > t + CLOCK_SKEW_S * 1000)
          return sendJson(res, 400, {
            error: 'bad_id',
            message: 'no sandbox credential with this id can be in use yet: its id is dated in the future',
          })
        const existing = deps.store.current().find((r) => r.id === id)
        if (existing !== undefined) return sendJson(res, 200, { ...existing, already: true })
        const seen = await deps.seen(id, new Date(Math.max(0, idTimeMs(id) - CLOCK_SKEW_S * 1000)))
        // Kept while a credential of this id can be valid: to its own expiry when a record has shown
        // it, else to its id's time plus the longest max_sandbox_ttl any config may set (not today's,
        // which a later reload may raise).
        const expiry = seen?.sandbox_expires_at === undefined ? NaN : Date.parse(seen.sandbox_expires_at)
        const keptUntil = (Number.isFinite(expiry) ? expiry : idTimeMs(id) + MAX_SANDBOX_TTL_MS) + CLOCK_SKEW_S * 1000
        const r: Revocation = {
          id,
          agent: seen?.agent ?? null,
          revoked_at: new Date(t).toISOString(),
          expires_at: new Date(Math.max(keptUntil, t)).toISOString(),
          revoked_by: actorParam(url),
          reason: (url.searchParams.get('reason') ?? '').slice(0, 500),
        }
        try {
          await deps.store.add(r)
        } catch (err) {
          return sendStoreFailure(
            res,
            err,
            deps.log,
            {
              error: 'revocations_unavailable',
              message: 'the revocation store (Redis) cannot be reached; try again when it is back',
            },
            true,
          )
        }
        // The first revocation of an id stands (keepFirst): one another instance stored meanwhile is the answer.
        const stored = deps.store.current().find((x) => x.id === id)
        if (stored !== undefined && (stored.revoked_at !== r.revoked_at || stored.revoked_by !== r.revoked_by))
          return sendJson(res, 200, { ...stored, already: true })
        deps.log.info(
          { code: 'PC_SANDBOX_REVOKED', agent: r.agent, sandbox: id, by: r.revoked_by },
          'sandbox credential revoked',
        )
        sendJson(res, 200, r)
      },
    },
  ]
}
