import type { RuntimeConfig } from '../../config/types.js'
import { parseAuthority } from '../../net/host.js'
import { normalizePath, splitTarget } from '../../net/url-path.js'
import { effectiveMode } from '../../policy/compiled.js'
import {
  coveringApproval,
  decideConnectApproved,
  matchRequestApproved,
  type ApprovalIndex,
} from '../../policy/approvals.js'
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
  /** Which step decided: the CONNECT (https host/port) or the request (method/path). */
  readonly stage: 'connect' | 'request'
  readonly mode: Mode
  readonly host: string
  readonly port: number
  readonly path: string
}

export type ParsedTarget =
  | { readonly ok: true; readonly facts: Omit<RequestFacts, 'agent' | 'method'> }
  | { readonly ok: false; readonly error: string }

const METHOD = /^[A-Za-z]{1,20}$/
const ABSOLUTE = /^(https?):\/\/([^/?#]*)(.*)$/is

/**
 * Split an absolute http(s) URL exactly as the proxy would see it: the host
 * through normalizeHost (via parseAuthority), the raw target through
 * splitTarget + normalizePath. The WHATWG URL parser is not used for the path
 * because it rewrites it differently from what the origin receives.
 */
export function parseExplainUrl(text: string): ParsedTarget {
  const m = ABSOLUTE.exec(text.trim())
  if (!m) return { ok: false, error: 'url must be an absolute http:// or https:// URL' }
  const scheme = (m[1] as string).toLowerCase() as 'http' | 'https'
  const authority = (m[2] as string).slice((m[2] as string).lastIndexOf('@') + 1)
  const hostPort = parseAuthority(authority, scheme === 'https' ? 443 : 80)
  if (hostPort === null) return { ok: false, error: `'${authority.slice(0, 100)}' is not a valid host[:port]` }
  const rest = m[3] as string
  const target = rest === '' || rest.startsWith('?') || rest.startsWith('#') ? `/${rest}` : rest
  const { path: rawPath, query } = splitTarget(target)
  const path = normalizePath(rawPath)
  if (path === null)
    return { ok: false, error: 'the URL path is malformed (bad %-escape, control character, space or backslash)' }
  return { ok: true, facts: { scheme, host: hostPort.host, port: hostPort.port, path, query } }
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
  // Package rules by name, as the proxy's gate judges them, unless an approval covers the request (then the gate is skipped).
  const detail =
    packages === null || coveringApproval(approvals, facts, nowMs) !== undefined
      ? null
      : packageDenialOffline(packages, facts)
  const d: Decision =
    detail === null
      ? m.decision
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
