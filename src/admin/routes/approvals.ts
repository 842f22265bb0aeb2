import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { z } from 'zod'
import type { ApprovalStore } from '../../approvals/store.js'
import { isActive } from '../../approvals/store.js'
import { describeApproval, isApprovable, isApprovalTtl, type Approval } from '../../policy/approvals.js'
import type { Bus } from '../../telemetry/bus.js'
import { buildApprovalRecord, newRequestId, type DecisionRecord } from '../../telemetry/events.js'
import { parseDurationMs } from '../../config/duration.js'
import { actorParam, idParam, sendBadIdEncoding, readBody } from '../route-input.js'
import { sendJson, type Route } from '../server.js'
import { sendStoreFailure } from '../store-failure.js'
import { formatAuthority } from '../../net/host.js'

export interface ApprovalRouteDeps {
  readonly store: ApprovalStore
  /** The decision record a blocked request left (ring, else Redis). */
  findDecision(requestId: string): Promise<DecisionRecord | null>
  readonly bus: Bus
  /** Where a file store's failed write is said (PC_ERR_STORE_WRITE). */
  readonly log: Logger
  /** Read per approval: a reload that changes approvals.default_ttl applies at once. */
  defaultTtlMs(): number
  readonly now?: () => number
}

const CreateBody = z.strictObject({
  request_id: z.string().min(1).max(64),
  scope: z.enum(['exact', 'host', 'path-prefix']).default('exact'),
  ttl: z.string().max(16).optional(),
  reason: z.string().max(500).default(''),
  approved_by: z.string().min(1).max(100).optional(),
  /** Made from a sandbox's request (SPEC §9): apply to that sandbox alone, not to every sandbox of its agent. */
  sandbox_only: z.boolean().default(false),
})

/**
 * Run a store write; when the store cannot take it (Redis unreachable, a file it cannot write),
 * answer 503 and say why instead of letting it surface as an internal error. True when the write
 * went through.
 */
async function storeAvailable(write: () => Promise<void>, res: ServerResponse, log: Logger): Promise<boolean> {
  try {
    await write()
    return true
  } catch (err) {
    sendStoreFailure(res, err, log, REDIS_UNREACHABLE)
    return false
  }
}

const REDIS_UNREACHABLE = {
  error: 'approvals_unavailable',
  message:
    'the approvals store (Redis) cannot be reached, so this was not done: retry once Redis is back (approvals already in force stay in force)',
}

/** An approval as the API answers it: with its time left and what it opens, in words. */
function answer(a: Approval, nowMs: number): Approval & { expires_in_s: number; covers: string } {
  return {
    ...a,
    expires_in_s: Math.max(0, Math.round((Date.parse(a.expires_at) - nowMs) / 1000)),
    covers: a.sandbox === undefined ? describeApproval(a) : `${describeApproval(a)} from sandbox ${a.sandbox} only`,
  }
}

/**
 * The answer to approving again what an approval in force already opens (same request, scope and
 * sandbox): that approval (200, `already: true`), its expiry moved to `expiresMs` when that is
 * later (`extended: true`, recorded as an `extend` approval record), never shortened.
 */
async function answerExisting(
  deps: ApprovalRouteDeps,
  res: ServerResponse,
  existing: Approval,
  expiresMs: number,
  body: { readonly approved_by?: string | undefined; readonly reason: string },
  t: number,
): Promise<void> {
  if (expiresMs <= Date.parse(existing.expires_at))
    return sendJson(res, 200, { ...answer(existing, t), already: true, extended: false })
  const extended: Approval = { ...existing, expires_at: new Date(expiresMs).toISOString() }
  if (!(await storeAvailable(() => deps.store.add(extended), res, deps.log))) return
  deps.bus.publish(buildApprovalRecord('extend', extended, body.approved_by ?? 'admin', body.reason))
  sendJson(res, 200, { ...answer(extended, t), already: true, extended: true })
}

/**
 * Approve `record` with the request's scope and ttl, unless an approval in force already opens the
 * same request with the same scope and sandbox: then that one is answered (answerExisting), so one
 * revocation always closes what was approved.
 */
async function approveOnce(
  deps: ApprovalRouteDeps,
  res: ServerResponse,
  record: DecisionRecord & { readonly agent: string },
  body: z.infer<typeof CreateBody>,
  sandbox: string | undefined,
  ttlMs: number,
  t: number,
): Promise<void> {
  const existing = deps.store
    .current()
    .find((a) => isActive(a, t) && a.request_id === record.id && a.scope === body.scope && a.sandbox === sandbox)
  if (existing !== undefined) return answerExisting(deps, res, existing, t + ttlMs, body, t)
  const approval: Approval = {
    id: newRequestId(),
    request_id: record.id,
    agent: record.agent,
    scope: body.scope,
    method: record.method,
    host: record.host,
    port: record.port,
    path: record.path,
    created_at: new Date(t).toISOString(),
    expires_at: new Date(t + ttlMs).toISOString(),
    approved_by: body.approved_by ?? 'admin',
    reason: body.reason,
    ...(sandbox !== undefined ? { sandbox } : {}),
  }
  if (!(await storeAvailable(() => deps.store.add(approval), res, deps.log))) return
  deps.bus.publish(buildApprovalRecord('create', approval, approval.approved_by, approval.reason))
  sendJson(res, 201, answer(approval, t))
}

/** Runs the tasks given under one key one after another; tasks under other keys are not held up. */
function keyedTurns(): (key: string, task: () => Promise<void>) => Promise<void> {
  const last = new Map<string, Promise<void>>()
  return async (key, task) => {
    const mine = (last.get(key) ?? Promise.resolve()).then(task)
    const settled = mine.catch(() => undefined)
    last.set(key, settled)
    try {
      await mine
    } finally {
      if (last.get(key) === settled) last.delete(key)
    }
  }
}

/**
 * GET/POST /api/approvals, DELETE /api/approvals/:id[?by=NAME]. An approval is made only
 * from a recorded policy denial of a known agent, copies that request's facts
 * (never client-supplied ones), and is itself published as a telemetry record.
 */
export function approvalRoutes(deps: ApprovalRouteDeps): Route[] {
  const now = deps.now ?? Date.now
  const oneAtATime = keyedTurns()
  return [
    {
      method: 'GET',
      path: '/api/approvals',
      handler: (_req, res) => {
        const t = now()
        sendJson(res, 200, {
          approvals: deps.store
            .current()
            .filter((a) => isActive(a, t))
            .map((a) => answer(a, t)),
        })
      },
    },
    {
      method: 'POST',
      path: '/api/approvals',
      handler: async (req, res) => {
        const body = await readBody(req, res, CreateBody)
        if (body === null) return
        const ttlMs = body.ttl === undefined ? deps.defaultTtlMs() : parseDurationMs(body.ttl)
        if (!isApprovalTtl(ttlMs))
          return sendJson(res, 400, {
            error: 'bad_ttl',
            message: 'ttl is a duration like 30m, 2h or 7d, from 1s to 90d',
          })
        let record: DecisionRecord | null
        try {
          record = await deps.findDecision(body.request_id)
        } catch {
          // Not in this instance's memory, and the stream every instance writes cannot be read.
          return sendJson(res, 503, REDIS_UNREACHABLE)
        }
        if (!record)
          return sendJson(res, 404, {
            error: 'unknown_request',
            message: `no decision record with id ${body.request_id} (it may have aged out of the ring)`,
          })
        if (record.decision !== 'deny' || record.agent === null || !isApprovable(record.reason)) {
          return sendJson(res, 409, {
            error: 'not_approvable',
            message: `only policy denials (no rule, deny rule, port, method, path) of a known agent can be approved; this one is ${record.reason}`,
          })
        }
        if (body.scope === 'path-prefix' && record.path === null)
          return sendJson(res, 409, {
            error: 'scope_needs_path',
            message: `a CONNECT has no path, so path-prefix cannot narrow it: exact opens this CONNECT (a tunnel to ${formatAuthority(record.host, record.port)}, every path inside), as host does; to open some paths only, add a rule with paths (the proxy then intercepts and decides each request)`,
          })
        // A record keeps the first 1024 characters of a path (and its hash): an exact approval of that cut
        // would match no request, yet be answered 201.
        if (body.scope === 'exact' && record.path_sha256 !== undefined)
          return sendJson(res, 409, {
            error: 'path_too_long',
            message: `the blocked path was longer than records keep (${record.path?.length ?? 0} characters shown), so exact cannot name it: approve it with scope path-prefix or host`,
          })
        if (body.sandbox_only && record.sandbox === undefined)
          return sendJson(res, 409, {
            error: 'not_a_sandbox_request',
            message: 'sandbox_only applies to a request made with a sandbox credential; this one was not',
          })
        const sandbox = body.sandbox_only ? record.sandbox : undefined
        // Two identical POSTs at once (a double click on the page) must make one approval, not two of
        // which a revocation closes only one: the second waits for the first, then finds its approval.
        const denied = { ...record, agent: record.agent } // the agent, checked above, as a string for the task
        await oneAtATime(`${record.id} ${body.scope} ${sandbox ?? ''}`, () =>
          approveOnce(deps, res, denied, body, sandbox, ttlMs, now()),
        )
      },
    },
    {
      method: 'DELETE',
      path: '/api/approvals/',
      handler: async (_req, res, url) => {
        const id = idParam(url, '/api/approvals/')
        if (id === null) return sendBadIdEncoding(res)
        const existing = deps.store.current().find((a) => a.id === id)
        let found = false
        if (!(await storeAvailable(async () => void (found = await deps.store.revoke(id)), res, deps.log))) return
        if (!found) return sendJson(res, 404, { error: 'unknown_approval' })
        const actor = actorParam(url)
        deps.bus.publish(buildApprovalRecord('revoke', existing ?? { id }, actor, 'revoked'))
        sendJson(res, 200, { revoked: id })
      },
    },
  ]
}
