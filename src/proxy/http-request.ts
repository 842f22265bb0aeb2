import type { IncomingMessage, ServerResponse } from 'node:http'
import { authenticate } from '../identity/authenticate.js'
import { parseAuthority } from '../net/host.js'
import { normalizePath, splitTarget } from '../net/url-path.js'
import { resolveChecked } from '../net/resolve.js'
import { matchRequestApproved } from '../policy/approvals.js'
import { effectiveMode } from '../policy/compiled.js'
import type { DenyDecision } from '../policy/types.js'
import { newRequestId, type DecisionFacts } from '../telemetry/events.js'
import { connStateOf } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import { applyLimits, denialContext, passes, settle } from './decision-point.js'
import { checkRequestHead } from './request-guard.js'
import { respondDenial } from './respond.js'
import { passRequest } from './pass.js'

export interface AbsoluteTarget {
  readonly host: string
  readonly port: number
  readonly path: string
  readonly query: string
}

/** `http://host[:port]/path?query` → parts, or null. Userinfo in the URL is refused: credentials never travel in request targets. */
export function parseAbsoluteHttpTarget(url: string): AbsoluteTarget | null {
  const m = /^http:\/\/([^/?#]*)(.*)$/i.exec(url)
  if (!m) return null
  const authority = m[1] as string
  if (authority.includes('@') || authority === '') return null
  const hp = parseAuthority(authority, 80)
  if (!hp) return null
  const rest = m[2] as string
  const { path: rawPath, query } = splitTarget(rest === '' || rest.startsWith('?') ? `/${rest}` : rest)
  const path = normalizePath(rawPath)
  if (path === null) return null
  return { host: hp.host, port: hp.port, path, query }
}

export function requestTargetOf(t: { path: string; query: string }): string {
  return t.query ? `${t.path}?${t.query}` : t.path
}

/** Plain-HTTP flow: guard → identity → policy → limits → mode → resolve → forward; one record per decision and one close per request. */
export async function handlePlainRequest(deps: ProxyDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const t0 = performance.now()
  const state = connStateOf(req.socket)
  const guard = checkRequestHead(req.rawHeaders)
  if (!guard.ok) return badRequest(res, guard.status, guard.detail)
  const target = parseAbsoluteHttpTarget(req.url ?? '')
  if (!target) return badRequest(res, 400, (req.url ?? '').startsWith('/') ? 'origin_form' : 'bad_target')

  const cfg = deps.config()
  const id = newRequestId()
  const method = (req.method ?? 'GET').toUpperCase()
  const identity = authenticate(cfg.policy, req.headers['proxy-authorization'], state.srcIp)
  const base = { id, src: state.src, method, scheme: 'http' as const, host: target.host, port: target.port, path: target.path, tls: null, address: null }
  if (identity.kind === 'denied') {
    const facts: DecisionFacts = { ...base, agent: identity.claimedAgent, mode: cfg.policy.mode }
    settle(deps.bus, facts, identity.decision)
    return respondDenial(res, identity.decision, denialContext(facts, req.headers, target.query))
  }
  const agent = identity.agent.id
  const facts: DecisionFacts = { ...base, agent, mode: effectiveMode(cfg.policy, agent) }
  const { decision: policyDecision, rule } = matchRequestApproved(cfg.policy, { agent, method, scheme: 'http', host: target.host, port: target.port, path: target.path, query: target.query }, deps.approvals(), Date.now())
  // One upstream request in flight holds a connection slot until the response is done.
  const { decision, release } = applyLimits(deps.limiter, agent, identity.agent.limits, policyDecision, facts.mode, { request: true, connection: true })
  deps.observeDecision((performance.now() - t0) / 1000)
  if (decision.verdict === 'deny' && !passes(decision, facts.mode)) {
    settle(deps.bus, facts, decision)
    return respondDenial(res, decision, denialContext(facts, req.headers, target.query))
  }
  res.once('close', release)
  const resolved = await resolveChecked(target.host, cfg.upstream)
  if ('verdict' in resolved) {
    // Audit mode let a policy denial through: its honest record first, then why it still failed.
    if (decision.verdict === 'deny') settle(deps.bus, facts, decision)
    settle(deps.bus, facts, resolved)
    return respondDenial(res, resolved, denialContext(facts, req.headers, target.query))
  }
  const forwardTo = { address: resolved.address, port: target.port, host: target.host, tls: false, requestTarget: requestTargetOf(target) }
  await passRequest(deps, req, res, { ...facts, address: resolved.address }, decision, rule, forwardTo, target.query, true)
}

function badRequest(res: ServerResponse, status: 400 | 431, detail: string): void {
  const body = `portcullis could not accept this request (${detail}). Send an absolute-form request (GET http://host/path) or CONNECT host:port through the proxy.\n`
  res.shouldKeepAlive = false
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' })
  res.end(body)
}
