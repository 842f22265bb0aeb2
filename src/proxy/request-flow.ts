import { hash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { authenticate, type Credential, type Identity } from '../identity/authenticate.js'
import {
  limiterKey,
  sandboxDenial,
  sandboxFactsOf,
  sandboxLapse,
  type SandboxAuth,
  type SandboxFacts,
} from '../identity/sandbox-auth.js'
import { isIpLiteral, normalizeHost, parseAuthority } from '../net/host.js'
import { resolveChecked, resolveCheckedNow, type Resolved, type Unresolved } from '../net/resolve.js'
import { normalizePath, splitTarget } from '../net/url-path.js'
import { parseAbsoluteUrl } from '../net/absolute-url.js'
import { denyByAddressApproved, matchRequestApproved } from '../policy/approvals.js'
import { effectiveMode, type CompiledPolicy } from '../policy/compiled.js'
import { hasIpDenyRules, NO_HANDLING, type Handling } from '../policy/decide.js'
import type { Decision, DenyDecision, Mode, RequestFacts } from '../policy/types.js'
import { newRequestId, type DecisionFacts } from '../telemetry/events.js'
import { connStateOf } from './conn-state.js'
import { applyLimits, denialContext, failedAfter, passes, settle } from './decision-point.js'
import type { ProxyDeps } from './deps.js'
import type { ForwardTarget } from './forward.js'
import { passRequest } from './pass.js'
import { checkRequestHead } from './request-guard.js'
import { bodyStillComing, lingerAfterAnswer } from './linger.js'
import { respondDenial, respondUnacceptable } from './respond.js'

/**
 * An HTTP request's one flow, whatever brought it: an absolute-form request on the proxy listener
 * (`proxy`: identified per request by Proxy-Authorization or source, the host resolved and checked
 * here), or a request inside an established CONNECT (`connect`: terminated TLS, or cleartext HTTP in a
 * tunnel; the agent and the checked address are the CONNECT's, and the request must name its host).
 *
 *   guard (smuggling shapes, malformed targets) → identity → policy with approvals → mode → limits
 *   → resolution → [passRequest: push/API gates, inspection, injection → one decision record → forward]
 *
 * Every refusal is recorded here (one decision record) and answered by respond.ts; what passes is
 * recorded by passRequest, once its gates have spoken.
 */
export type RequestChannel = { readonly kind: 'proxy' } | { readonly kind: 'connect'; readonly connect: ConnectChannel }

/** What a CONNECT established, as its inner requests are decided against it (intercept.ts InnerContext). */
export interface ConnectChannel {
  readonly agent: string
  readonly src: string
  readonly scheme: 'http' | 'https'
  readonly host: string
  readonly port: number
  readonly address: string
  /** The mode at CONNECT time, for an agent a reload has since removed. */
  readonly mode: Mode
  /** How the agent authenticated on the CONNECT (what a reload asks again). */
  readonly credential: Credential
}

export type RequestVerdict =
  /** Not a request the proxy can take: 400/431 and a closed connection; nothing recorded (a PC_BAD_REQUEST line). */
  | { readonly kind: 'malformed'; readonly status: 400 | 431 | 505; readonly detail: string }
  /** Past its source's budget of unauthenticated answers: closed without one. */
  | { readonly kind: 'drop' }
  /** Refused, and recorded: answer with respondDenial (`close` the connection after it). */
  | {
      readonly kind: 'deny'
      readonly facts: DecisionFacts
      readonly decision: DenyDecision
      readonly query: string
      readonly close: boolean
    }
  /** Let through (allowed, or a denial audit mode lets pass): passRequest decides the rest and records it. */
  | {
      readonly kind: 'pass'
      readonly facts: DecisionFacts
      readonly decision: Decision
      readonly handling: Handling
      readonly target: ForwardTarget
      readonly query: string
      /** How the agent proved who it is (kept by a connection that outlives the request: a WebSocket). */
      readonly credential: Credential
    }

/**
 * The verdict on a request: at once when nothing need be awaited (inside a CONNECT, or a pinned or
 * literal host), else once DNS has answered. A throw is the caller's to fail closed on (handleHttpRequest).
 */
export function decideHttpRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  channel: RequestChannel,
): RequestVerdict | Promise<RequestVerdict> {
  const t0 = performance.now()
  // Not a request the proxy can take: no decision and no record, but a line in the log (and a count).
  const malformed = (status: 400 | 431 | 505, detail: string): RequestVerdict => {
    deps.badRequests.note(req.socket, channel.kind === 'proxy' ? 'proxy' : 'tunnel', status, detail)
    return { kind: 'malformed', status, detail }
  }
  const guard = checkRequestHead(req.rawHeaders, req.httpVersion)
  if (!guard.ok) return malformed(guard.status, guard.detail)
  // RFC 9112 §3.2 (node's own check is off, so the answer is the proxy's, with its explanation).
  if (req.httpVersion === '1.1' && req.headers.host === undefined) return malformed(400, 'missing_host')
  const target = channel.kind === 'proxy' ? parseAbsoluteHttpTarget(req.url ?? '') : innerTarget(req.url)
  if (target === null) {
    // Inside a tunnel an origin-form target is the right form: what failed is its path.
    const detail =
      channel.kind === 'connect' ? 'bad_path' : (req.url ?? '').startsWith('/') ? 'origin_form' : 'bad_target'
    return malformed(400, detail)
  }
  const cfg = deps.config()
  const method = (req.method ?? 'GET').toUpperCase()
  const id = newRequestId()
  // A sandbox credential's id and labels go into every record it makes (SPEC §9).
  let sb: SandboxFacts | null = null
  // Facts are built whole, in one shape: spreading a base object into each variant cost ~5 µs a request.
  const factsOf = (agent: string | null, mode: Mode, address: string | null): DecisionFacts => ({
    id,
    agent,
    src: channel.kind === 'proxy' ? connStateOf(req.socket).src : channel.connect.src,
    method,
    scheme: channel.kind === 'proxy' ? 'http' : channel.connect.scheme,
    host: channel.kind === 'proxy' ? target.host : channel.connect.host,
    port: channel.kind === 'proxy' ? target.port : channel.connect.port,
    path: target.path,
    tls: channel.kind === 'connect' && channel.connect.scheme === 'https' ? 'intercept' : null,
    mode,
    address,
    sandbox: sb?.sandbox,
    labels: sb?.labels,
    sandbox_expires_at: sb?.sandbox_expires_at,
  })
  const deny = (facts: DecisionFacts, d: DenyDecision, close: boolean): RequestVerdict => {
    settle(deps.bus, facts, d)
    return { kind: 'deny', facts, decision: d, query: target.query, close }
  }

  // Who: the request's credentials on the proxy listener; the CONNECT's agent inside one.
  let agentId: string
  let limits
  let mode: Mode
  let credential: Credential
  if (channel.kind === 'proxy') {
    const state = connStateOf(req.socket)
    const identity = authenticateOn(
      req.socket,
      cfg.policy,
      req.headers['proxy-authorization'],
      state.srcIp,
      deps.sandboxAuth(),
    )
    if (identity.kind === 'denied') {
      sb = identity.claimedSandbox ?? null
      // A connection that never authenticated is closed after its answer (it holds a descriptor and its
      // source's share); past the source's budget of such answers it is closed without one.
      const neverAuthenticated = !deps.gate.isAuthenticated(req.socket)
      if (neverAuthenticated && !deps.gate.spendDenial(state.srcIp)) return { kind: 'drop' }
      return deny(factsOf(identity.claimedAgent, cfg.policy.mode, null), identity.decision, neverAuthenticated)
    }
    deps.gate.authenticated(req.socket)
    agentId = identity.agent.id
    credential = identity.credential
    sb = sandboxFactsOf(credential)
    limits = identity.agent.limits
    mode = effectiveMode(cfg.policy, agentId)
  } else {
    const c = channel.connect
    agentId = c.agent
    credential = c.credential
    sb = sandboxFactsOf(credential)
    limits = cfg.policy.agents.get(c.agent)?.limits
    // The mode in force now, not at CONNECT time: a reload from audit to enforce applies to open connections.
    mode = cfg.policy.agents.has(c.agent) ? effectiveMode(cfg.policy, c.agent) : c.mode
    // A sandbox credential expires or is revoked under an open CONNECT too: refuse and close.
    const lapse = credential.kind === 'sandbox' ? sandboxLapse(credential, deps.sandboxAuth(), Date.now()) : null
    if (lapse !== null) return deny(factsOf(agentId, cfg.policy.mode, c.address), sandboxDenial(lapse), true)
    if (!namesConnectHost(req, c)) {
      const facts = factsOf(agentId, mode, c.address)
      const d: DenyDecision = { verdict: 'deny', reason: 'denied_host_mismatch', ruleId: null }
      if (!passes(d, mode)) return deny(facts, d, true)
      return {
        kind: 'pass',
        facts,
        decision: d,
        handling: NO_HANDLING,
        target: innerForward(c, target),
        query: target.query,
        credential,
      }
    }
  }
  const host = channel.kind === 'proxy' ? target.host : channel.connect.host
  const port = channel.kind === 'proxy' ? target.port : channel.connect.port
  const scheme = channel.kind === 'proxy' ? 'http' : channel.connect.scheme
  const requestFacts: RequestFacts = {
    agent: agentId,
    method,
    scheme,
    host,
    port,
    path: target.path,
    query: target.query,
  }
  const named = matchRequestApproved(cfg.policy, requestFacts, deps.approvals(), Date.now(), sb?.sandbox ?? null)
  const handling = named.handling
  // Inside a CONNECT the address is the CONNECT's, already checked: IP and CIDR deny rules are asked of it now.
  const policyDecision =
    channel.kind === 'connect'
      ? checkAddress(deps, cfg.policy, requestFacts, channel.connect.address, named.decision, sb?.sandbox ?? null)
      : named.decision
  // A plain-HTTP client connection holds a concurrent_connections slot while it is open, idle or not;
  // inside a CONNECT the CONNECT holds it. Each request is one against the budget.
  const { decision } = limits
    ? applyLimits(deps.limiter, limiterKey(agentId, credential), limits, policyDecision, mode, {
        request: true,
        connection: channel.kind === 'proxy' ? req.socket : false,
      })
    : { decision: policyDecision }
  deps.observeDecision((performance.now() - t0) / 1000)
  const address = channel.kind === 'proxy' ? null : channel.connect.address
  if (decision.verdict === 'deny' && !passes(decision, mode)) {
    // Refused a slot, the connection holds none and would only be refused again: close it.
    const noSlot = decision.reason === 'denied_rate_limited' && decision.detail === 'concurrent_connections'
    return deny(factsOf(agentId, mode, address), decision, noSlot)
  }
  if (channel.kind === 'connect')
    return {
      kind: 'pass',
      facts: factsOf(agentId, mode, address),
      decision,
      handling,
      target: innerForward(channel.connect, target),
      query: target.query,
      credential,
    }
  const resolved = (r: Resolved | Unresolved): RequestVerdict => {
    if (r.kind === 'unresolved') {
      // Audit mode let a policy denial through: its honest record first, then why it still failed.
      if (decision.verdict === 'deny') settle(deps.bus, factsOf(agentId, mode, null), decision)
      return deny(factsOf(agentId, mode, r.address), failedAfter(decision, r.decision), false)
    }
    const decided = checkAddress(deps, cfg.policy, requestFacts, r.address, decision, sb?.sandbox ?? null)
    if (decided.verdict === 'deny' && !passes(decided, mode)) {
      // Admitted against the budget as an allow: a request the policy refuses consumes nothing.
      if (limits && decision.verdict === 'allow') deps.limiter.refundRequest(limiterKey(agentId, credential))
      return deny(factsOf(agentId, mode, r.address), decided, false)
    }
    return {
      kind: 'pass',
      facts: factsOf(agentId, mode, r.address),
      decision: decided,
      handling,
      target: { address: r.address, port, host, tls: false, requestTarget: requestTargetOf(target) },
      query: target.query,
      credential,
    }
  }
  const now = resolveCheckedNow(host, cfg.upstream)
  return now !== null ? resolved(now) : resolveChecked(host, cfg.upstream).then(resolved)
}

/**
 * `decision`, unless it allows and one of the agent's IP or CIDR deny rules covers the address the
 * request's host name resolved to (denyByAddressApproved). An IP-literal host met those rules in the
 * policy itself.
 */
function checkAddress(
  deps: ProxyDeps,
  policy: CompiledPolicy,
  facts: RequestFacts,
  address: string | null,
  decision: Decision,
  sandbox: string | null,
): Decision {
  // Most agents have no IP or CIDR deny rule: asked first, so their requests pay one Map lookup here.
  if (decision.verdict !== 'allow' || address === null || !hasIpDenyRules(policy, facts.agent)) return decision
  if (isIpLiteral(facts.host)) return decision
  return denyByAddressApproved(policy, facts, address, facts, deps.approvals(), Date.now(), sandbox) ?? decision
}

/**
 * A request's whole flow on a ServerResponse: decided, then answered, both in the turn the request
 * arrived unless something must be awaited (DNS, a body a rule reads). A throw or a rejection at
 * either step goes to `fail`, the caller's fail-closed answer. `onPass` sees a verdict that lets the
 * request through before it is answered. Both are the caller's functions, made once, not per request.
 */
export function handleHttpRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  channel: RequestChannel,
  closeRecordPerRequest: boolean,
  fail: (err: unknown, req: IncomingMessage, res: ServerResponse) => void,
  onPass?: (verdict: PassVerdict, req: IncomingMessage, res: ServerResponse) => void,
): void {
  try {
    const verdict = decideHttpRequest(deps, req, channel)
    const answered =
      verdict instanceof Promise
        ? verdict.then((v) => answerVerdict(deps, req, res, v, closeRecordPerRequest, onPass))
        : answerVerdict(deps, req, res, verdict, closeRecordPerRequest, onPass)
    if (answered instanceof Promise) answered.catch((err: unknown) => fail(err, req, res))
  } catch (err) {
    fail(err, req, res)
  }
}

export type PassVerdict = Extract<RequestVerdict, { kind: 'pass' }>

function answerVerdict(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  verdict: RequestVerdict,
  closeRecordPerRequest: boolean,
  onPass: ((verdict: PassVerdict, req: IncomingMessage, res: ServerResponse) => void) | undefined,
): void | Promise<void> {
  if (verdict.kind === 'pass') onPass?.(verdict, req, res)
  return answerHttpRequest(deps, req, res, verdict, closeRecordPerRequest)
}

/**
 * Answer an HTTP request the way its verdict says (a ServerResponse: absolute-form, or inside a
 * CONNECT): a 400/431 that closes, nothing (a dropped connection), the denial, or passRequest.
 */
export function answerHttpRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  verdict: RequestVerdict,
  closeRecordPerRequest: boolean,
): void | Promise<void> {
  switch (verdict.kind) {
    case 'malformed':
      if (bodyStillComing(req)) lingerAfterAnswer(req.socket)
      return respondUnacceptable(res, verdict.status, verdict.detail)
    case 'drop':
      return void req.socket.destroy()
    case 'deny': {
      // Refused from its head while its body is still on the way: the connection closes after the
      // answer rather than read and throw away an upload the agent may be sending for minutes (and
      // whose bytes would then be billed to the next request on it), lingering so the answer arrives.
      const uploading = bodyStillComing(req)
      if (uploading) lingerAfterAnswer(req.socket)
      return respondDenial(
        res,
        verdict.decision,
        denialContext(verdict.facts, req.headers, verdict.query),
        verdict.close || uploading,
      )
    }
    case 'pass':
      return passRequest(
        deps,
        req,
        res,
        verdict.facts,
        verdict.decision,
        verdict.handling,
        verdict.target,
        verdict.query,
        closeRecordPerRequest ? verdict.credential : null,
      )
  }
}

export interface RequestTarget {
  readonly host: string
  readonly port: number
  readonly path: string
  readonly query: string
}

/** `http://host[:port]/path?query` → parts, or null. Userinfo in the URL is refused: credentials never travel in request targets. */
export function parseAbsoluteHttpTarget(url: string): RequestTarget | null {
  const u = parseAbsoluteUrl(url)
  return typeof u === 'string' || u.scheme !== 'http' ? null : u
}

/** The path and query of a request inside a CONNECT (origin-form, or absolute-form naming the host). */
function innerTarget(url: string | undefined): RequestTarget | null {
  // Origin-form (nearly every inner request) has no scheme and authority to strip.
  const rawTarget = url?.startsWith('/') === true ? url : (url ?? '/').replace(/^https?:\/\/[^/?#]*/i, '') || '/'
  const { path: rawPath, query } = splitTarget(rawTarget.startsWith('/') ? rawTarget : `/${rawTarget}`)
  const path = normalizePath(rawPath)
  return path === null ? null : { host: '', port: 0, path, query }
}

function innerForward(c: ConnectChannel, t: RequestTarget): ForwardTarget {
  return {
    address: c.address,
    port: c.port,
    host: c.host,
    tls: c.scheme === 'https',
    requestTarget: requestTargetOf(t),
  }
}

export function requestTargetOf(t: { path: string; query: string }): string {
  return t.query ? `${t.path}?${t.query}` : t.path
}

/**
 * Does the inner request name the CONNECT host (and port, when it gives one)? Both an absolute-form
 * target and the Host header must, when present: the origin may read either.
 */
function namesConnectHost(req: IncomingMessage, c: ConnectChannel): boolean {
  const abs = /^https?:\/\/([^/?#]*)/i.exec(req.url ?? '')
  for (const authority of [abs?.[1], req.headers.host]) {
    if (authority === undefined) continue
    const named =
      parseAuthority(authority, c.port) ??
      (normalizeHost(authority) !== null ? { host: normalizeHost(authority) as string, port: c.port } : null)
    if (named === null || named.host !== c.host || named.port !== c.port) return false
  }
  return true
}

interface AuthMemo {
  /** Held weakly: an idle kept-alive connection must not keep a replaced policy alive. */
  readonly policy: WeakRef<CompiledPolicy>
  /** sha256 of the header, not the header: the token is not kept beyond its request. */
  readonly headerDigest: string | null
  readonly identity: Identity
}
const lastAuth = new WeakMap<Socket, AuthMemo>()

/**
 * authenticate, remembered for the connection: a kept-alive client sends the same Proxy-Authorization
 * with every request, and the answer is a pure function of policy, header and source (one connection,
 * one source), so only a different header or a reloaded policy asks again (parsing, base64, UTF-8 and
 * the token's sha256 were 3.5 % of a forwarded request's CPU; one digest of the header is a fraction).
 */
function authenticateOn(
  socket: Socket,
  policy: CompiledPolicy,
  header: string | undefined,
  srcIp: string,
  sandboxes: SandboxAuth,
): Identity {
  const headerDigest = header === undefined ? null : hash('sha256', header, 'base64')
  const memo = lastAuth.get(socket)
  if (memo !== undefined && memo.headerDigest === headerDigest && memo.policy.deref() === policy)
    return stillValid(memo.identity, sandboxes)
  const identity = authenticate(policy, header, srcIp, sandboxes)
  // A credential not valid yet may become valid: it is asked again.
  if (identity.kind === 'agent' || identity.decision.detail !== 'not_yet_valid')
    lastAuth.set(socket, { policy: new WeakRef(policy), headerDigest, identity })
  return identity
}

/** A remembered sandbox login still holds only while its credential has not expired or been revoked. */
function stillValid(identity: Identity, sandboxes: SandboxAuth): Identity {
  if (identity.kind !== 'agent' || identity.credential.kind !== 'sandbox') return identity
  const lapse = sandboxLapse(identity.credential, sandboxes, Date.now())
  if (lapse === null) return identity
  const claimedSandbox = sandboxFactsOf(identity.credential) ?? undefined
  return { kind: 'denied', decision: sandboxDenial(lapse), claimedAgent: identity.agent.id, claimedSandbox }
}
