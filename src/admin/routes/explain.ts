import type { RuntimeConfig } from '../../config/types.js'
import { parseAbsoluteUrl } from '../../net/absolute-url.js'
import { effectiveMode } from '../../policy/compiled.js'
import {
  approvalOfRequest,
  approvedBy,
  decideConnectApproved,
  denyByAddressApproved,
  matchRequestApproved,
  type ApprovalIndex,
} from '../../policy/approvals.js'
import { isIpLiteral } from '../../net/host.js'
import { hasIpDenyRules } from '../../policy/decide.js'
import { packageDenialOffline, repoWriteDenialOffline } from '../../lifecycle/decide-offline.js'
import type { Decision, Mode, RequestFacts } from '../../policy/types.js'
import { sendJson, type Route } from '../server.js'

export interface Explanation {
  readonly decision: 'allow' | 'deny'
  readonly reason: Decision['reason']
  readonly rule: string | null
  /** https only: how the CONNECT would be handled (absent when the CONNECT itself is denied). */
  readonly via?: 'tunnel' | 'intercept'
  readonly detail?: string
  /** Which step decided: the CONNECT (https host/port), the request (method/path) or the pinned address. */
  readonly stage: 'connect' | 'request' | 'address'
  readonly mode: Mode
  readonly host: string
  readonly port: number
  readonly path: string
}

export type ParsedTarget =
  | { readonly ok: true; readonly facts: Omit<RequestFacts, 'agent' | 'method'> }
  | { readonly ok: false; readonly error: string }

const METHOD = /^[A-Za-z]{1,20}$/
/** The URL as the proxy reads an absolute-form target (net/absolute-url.ts). */
export function parseExplainUrl(text: string): ParsedTarget {
  const u = parseAbsoluteUrl(text.trim())
  return typeof u === 'string' ? { ok: false, error: u } : { ok: true, facts: u }
}

/**
 * The decision the running policy would make, computed without any network I/O; with the
 * approvals in force (`approvals`), exactly what traffic would get now, approvals included.
 */
export function explain(
  config: RuntimeConfig,
  agent: string,
  method: string,
  target: Omit<RequestFacts, 'agent' | 'method'>,
  approvals: ApprovalIndex = new Map(),
  nowMs = Date.now(),
): Explanation {
  const facts: RequestFacts = { ...target, agent, method }
  const base = { mode: effectiveMode(config.policy, agent), host: facts.host, port: facts.port, path: facts.path }
  let via: 'tunnel' | 'intercept' | undefined
  if (facts.scheme === 'https') {
    const c = decideConnectApproved(config.policy, { agent, host: facts.host, port: facts.port }, approvals, nowMs)
    if (c.verdict === 'deny') return { ...describe(c), stage: 'connect', ...base }
    via = c.via
  }
  const m = matchRequestApproved(config.policy, facts, approvals, nowMs)
  // A pinned name's address asked of IP and CIDR deny rules, as the proxy asks the address it dials.
  const pinned =
    m.decision.verdict === 'allow' && hasIpDenyRules(config.policy, agent) && isIpLiteral(facts.host) === null
      ? config.upstream.resolve.get(facts.host)?.[0]
      : undefined
  // An approval that lifts an address denial is what allows the request, and is named as the proxy records it.
  let lifted: Decision | null = null
  if (pinned !== undefined) {
    const inside = via === 'tunnel' ? null : facts
    const d = denyByAddressApproved(config.policy, facts, pinned, inside, approvals, nowMs)
    if (d?.verdict === 'deny') return { ...describe(d), ...(via ? { via } : {}), stage: 'address', ...base }
    lifted = d
  }
  // The GitHub API gate runs whatever approvals say: a merge stays refused.
  const write = m.decision.verdict === 'allow' ? repoWriteDenialOffline(m.handling.repo, facts) : null
  if (write !== null) {
    const refused: Decision = {
      verdict: 'deny',
      reason: 'denied_repo_write',
      ruleId: m.handling.repoRuleId,
      detail: write,
    }
    return { ...describe(refused), ...(via ? { via } : {}), stage: 'request', ...base }
  }
  const packages = m.decision.verdict === 'allow' ? m.handling.packages : null
  // Package rules by name, as the proxy's gate judges them, unless an approval covers the request as
  // written and as decoded (then the gate is skipped, and the approval is named as the record names it).
  const approval = packages === null ? undefined : approvalOfRequest(approvals, facts, nowMs)
  const detail = packages === null || approval !== undefined ? null : packageDenialOffline(packages, facts)
  const d: Decision =
    approval !== undefined
      ? approvedBy(approval)
      : detail === null
        ? (lifted ?? m.decision)
        : { verdict: 'deny', reason: 'denied_package', ruleId: m.handling.packagesRuleId, detail }
  return { ...describe(d), ...(via ? { via } : {}), stage: 'request', ...base }
}

function describe(d: Decision): Pick<Explanation, 'decision' | 'reason' | 'rule' | 'detail'> {
  const out = { decision: d.verdict, reason: d.reason, rule: d.ruleId }
  return d.verdict === 'deny' && d.detail !== undefined ? { ...out, detail: d.detail } : out
}

/** GET /api/explain?agent=&method=&url= — the decision and rule for a request, approvals in force included, no traffic. */
export function explainRoutes(config: () => RuntimeConfig, approvals: () => ApprovalIndex): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/explain',
      handler: (_req, res, url) => {
        const p = url.searchParams
        const agent = p.get('agent') ?? ''
        const method = (p.get('method') || 'GET').toUpperCase()
        const rawUrl = p.get('url') ?? ''
        if (agent === '') return sendJson(res, 400, { error: 'bad_query', message: 'agent is required' })
        if (!METHOD.test(method))
          return sendJson(res, 400, { error: 'bad_query', message: 'method must be an HTTP method token such as GET' })
        if (rawUrl === '') return sendJson(res, 400, { error: 'bad_query', message: 'url is required' })
        const target = parseExplainUrl(rawUrl)
        if (!target.ok) return sendJson(res, 400, { error: 'bad_url', message: target.error })
        const current = config()
        if (!current.policy.agents.has(agent))
          return sendJson(res, 404, {
            error: 'unknown_agent',
            message: `no agent '${agent.slice(0, 100)}' in the running config`,
          })
        sendJson(res, 200, explain(current, agent, method, target.facts, approvals()))
      },
    },
  ]
}
