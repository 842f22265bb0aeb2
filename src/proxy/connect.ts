import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { authenticate } from '../identity/authenticate.js'
import { limiterKey, sandboxFactsOf } from '../identity/sandbox-auth.js'
import { formatAuthority, isIpLiteral, normalizeHost, parseAuthority } from '../net/host.js'
import { resolveChecked } from '../net/resolve.js'
import { dialChecked } from '../net/dial.js'
import { decideConnectApproved, denyByAddressApproved } from '../policy/approvals.js'
import { effectiveMode, explainedDenialPorts } from '../policy/compiled.js'
import type { CompiledAgent } from '../policy/types.js'
import { hasIpDenyRules } from '../policy/decide.js'
import { normalizePath, splitTarget } from '../net/url-path.js'
import type { DenyDecision } from '../policy/types.js'
import { newRequestId, type DecisionFacts } from '../telemetry/events.js'
import { connStateOf, destroyEmitter } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import { recordUnused } from './connection.js'
import { applyLimits, denialContext, failedAfter, passes, settle } from './decision-point.js'
import { readClientHello, TLS_ALERT_UNRECOGNIZED_NAME, type HelloOutcome } from './client-hello-reader.js'
import { refuseMalformed } from './bad-requests.js'
import { respondConnectDenial, respondDenial, respondRawDenial } from './respond.js'
import { createUpstreamRelay, spliceTunnel, type UpstreamRelay } from './tunnel.js'
import { checkRequestHead } from './request-guard.js'

const ESTABLISHED = 'HTTP/1.1 200 Connection established\r\nVia: 1.1 portcullis\r\n\r\n'

/**
 * CONNECT flow: authority → identity → decideConnect → mode → resolve (checked
 * address) → dial (tunnel only) → 200 → ClientHello/SNI check → splice or
 * intercept. Nothing reaches upstream before the SNI check passes; the
 * decision record is published once, at the final verdict.
 */
export async function handleConnect(
  deps: ProxyDeps,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  const t0 = performance.now()
  const state = connStateOf(socket)
  const guard = checkRequestHead(req.rawHeaders, req.httpVersion)
  if (!guard.ok) return refuseMalformed(deps.badRequests, socket, 'proxy', guard.status, guard.detail)
  const authority = parseAuthority(req.url ?? '')
  if (!authority) return refuseMalformed(deps.badRequests, socket, 'proxy', 400, 'bad_connect_target')
  const cfg = deps.config()
  const id = newRequestId()
  // `tls` says how the bytes were handled, so it stays null on every refusal.
  const base = {
    id,
    src: state.src,
    method: 'CONNECT',
    scheme: 'https' as const,
    host: authority.host,
    port: authority.port,
    path: null,
    address: null,
    tls: null,
  }
  const identity = authenticate(cfg.policy, req.headers['proxy-authorization'], state.srcIp, deps.sandboxAuth())
  if (identity.kind === 'denied') {
    if (!deps.gate.isAuthenticated(socket) && !deps.gate.spendDenial(state.srcIp)) return void socket.destroy()
    const facts: DecisionFacts = {
      ...base,
      agent: identity.claimedAgent,
      mode: cfg.policy.mode,
      ...identity.claimedSandbox,
    }
    settle(deps.bus, facts, identity.decision)
    return respondConnectDenial(socket, identity.decision, denialContext(facts, req.headers))
  }
  deps.gate.authenticated(socket)
  const agent = identity.agent.id
  // A sandbox (SPEC §9): its id and labels in every record, and a budget of its own.
  const sb = sandboxFactsOf(identity.credential)
  const key = limiterKey(agent, identity.credential)
  const mode = effectiveMode(cfg.policy, agent)
  const policyDecision = decideConnectApproved(
    cfg.policy,
    { agent, host: authority.host, port: authority.port },
    deps.approvals(),
    Date.now(),
    sb?.sandbox ?? null,
  )
  const via = policyDecision.verdict === 'allow' ? policyDecision.via : 'tunnel'
  // Every CONNECT is one request against the budget: an intercepted one costs a TLS handshake and maybe a
  // certificate, whatever its inner requests (each counted again) do.
  const { decision: limited, release } = applyLimits(deps.limiter, key, identity.agent.limits, policyDecision, mode, {
    request: true,
    connection: true,
  })
  deps.observeDecision((performance.now() - t0) / 1000)
  let decision = limited
  const refused: DecisionFacts = { ...base, agent, mode, ...sb }
  const explainable = { agent: identity.agent, key, head }
  if (decision.verdict === 'deny' && !passes(decision, mode))
    return refuse(deps, socket, req, refused, decision, explainable)
  socket.on('close', release)
  // Audit mode let a policy denial through: should the connection still fail, the denial's honest
  // record comes first (would_deny), then why it failed, as for a plain request.
  const auditedDenial = (): void => {
    if (decision.verdict === 'deny') settle(deps.bus, refused, decision)
  }
  const resolved = await resolveChecked(authority.host, cfg.upstream)
  if (resolved.kind === 'unresolved') {
    auditedDenial()
    return refuse(
      deps,
      socket,
      req,
      { ...refused, address: resolved.address },
      failedAfter(decision, resolved.decision),
      explainable,
    )
  }
  // A name that resolved into a range an IP or CIDR deny rule names is refused like the literal.
  const byAddress =
    decision.verdict === 'allow' && hasIpDenyRules(cfg.policy, agent) && !isIpLiteral(authority.host)
      ? denyByAddressApproved(
          cfg.policy,
          { agent, host: authority.host, port: authority.port },
          resolved.address,
          null,
          deps.approvals(),
          Date.now(),
          sb?.sandbox ?? null,
        )
      : null
  if (byAddress !== null) {
    if (byAddress.verdict === 'deny' && !passes(byAddress, mode)) {
      // Admitted against the budget as an allow: a CONNECT the policy refuses consumes nothing.
      deps.limiter.refundRequest(key)
      return refuse(deps, socket, req, { ...refused, address: resolved.address }, byAddress, explainable)
    }
    decision = byAddress
  }
  const checkedNoTls: DecisionFacts = { ...refused, address: resolved.address }
  const checked: DecisionFacts = { ...checkedNoTls, tls: via }
  let up: Socket | null = null
  let relay: UpstreamRelay | null = null
  if (via === 'tunnel') {
    relay = createUpstreamRelay()
    const dialled = await dialChecked(resolved.address, authority.port, cfg.upstream.connectTimeoutMs, relay.onread)
    if ('kind' in dialled) {
      if (dialled.failure === 'out_of_descriptors') deps.descriptors.note('dial')
      auditedDenial()
      return refuse(
        deps,
        socket,
        req,
        checkedNoTls,
        failedAfter(decision, { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: dialled.failure }),
        explainable,
      )
    }
    up = dialled
    up.on('error', destroyEmitter)
  } else if (!deps.interceptor) {
    auditedDenial()
    return refuse(deps, socket, req, checkedNoTls, {
      verdict: 'deny',
      reason: 'denied_internal_error',
      ruleId: decision.ruleId,
      detail: 'interception_unavailable',
    })
  }
  if (socket.destroyed) return void up?.destroy()
  socket.write(ESTABLISHED)
  const hello = await readClientHello(socket, head, cfg.upstream.headerTimeoutMs)
  // After the 200 the connection was let through: however it ends from here, it gets its close record.
  const closeUnused = (): void => recordUnused(deps, { id, agent, host: authority.host, ...sb }, state.acceptedAtMs)
  if (hello.kind === 'closed') {
    // The client left before saying anything: the CONNECT itself was allowed, nothing flowed, and no
    // bytes were handled (tunnelled or intercepted), so `tls` stays null.
    settle(deps.bus, checkedNoTls, decision)
    closeUnused()
    up?.destroy()
    return void socket.destroy()
  }
  if (hello.kind === 'not_tls' && looksLikeHttp(hello.bytes) && deps.interceptor) {
    // Plain HTTP in a tunnel (undici's ProxyAgent sends http:// URLs this way): there is no server name to
    // check, but every request can be read, so each is decided on its full URL and Host like a plain one.
    settle(deps.bus, checkedNoTls, decision)
    up?.destroy()
    // Its requests are counted one by one like intercepted ones, so the CONNECT itself is not one.
    if (decision.reason !== 'denied_rate_limited') deps.limiter.refundRequest(key)
    deps.interceptor.inspectPlain(socket, hello.bytes, {
      id,
      agent,
      host: authority.host,
      port: authority.port,
      address: resolved.address,
      pinned: cfg.upstream.resolve.has(authority.host),
      src: state.src,
      srcIp: state.srcIp,
      credential: identity.credential,
      mode,
      ...sb,
    })
    return
  }
  const sniDenial = checkServerName(hello, authority.host)
  // Audit mode lets a mismatched name through only when there is a ClientHello to replay.
  const sniRefused = sniDenial !== null && (mode !== 'audit' || hello.kind !== 'hello')
  const fronted = sniDenial?.detail === 'sni_differs' && hello.kind === 'hello' ? recordedSni(hello.sni) : undefined
  const settled = sniRefused ? checkedNoTls : checked
  settle(deps.bus, fronted === undefined ? settled : { ...settled, sni: fronted }, sniDenial ?? decision)
  if (sniRefused) {
    closeUnused()
    up?.destroy()
    if (hello.kind !== 'hello') return void socket.destroy()
    // An agent that trusts the CA is told why in HTTP, inside TLS under the name it asked for: a bare
    // alert reads as a network fault.
    const leafName = hello.sni === null ? authority.host : normalizeHost(hello.sni)
    if (leafName !== null && explainsHere(deps, sniDenial, explainable, null))
      return explainInTls(deps, socket, hello.bytes, leafName, checkedNoTls, sniDenial)
    socket.end(TLS_ALERT_UNRECOGNIZED_NAME)
    return void setTimeout(() => socket.destroy(), 1000).unref()
  }
  const bytes = hello.kind === 'hello' || hello.kind === 'not_tls' ? hello.bytes : Buffer.alloc(0)
  if (up === null || relay === null) {
    const wildcard = policyDecision.verdict === 'allow' && policyDecision.wildcardLeaf === true
    deps.interceptor?.intercept(socket, bytes, {
      id,
      agent,
      host: authority.host,
      leafName: wildcard ? parentWildcard(authority.host) : authority.host,
      port: authority.port,
      address: resolved.address,
      pinned: cfg.upstream.resolve.has(authority.host),
      src: state.src,
      srcIp: state.srcIp,
      credential: identity.credential,
      mode,
      ...sb,
    })
    return
  }
  spliceTunnel(
    socket,
    up,
    relay,
    bytes,
    {
      id,
      agent,
      host: authority.host,
      port: authority.port,
      address: resolved.address,
      pinned: cfg.upstream.resolve.has(authority.host),
      srcIp: state.srcIp,
      credential: identity.credential,
      startedAtMs: Date.now(),
      ...sb,
    },
    cfg.upstream.idleTimeoutMs,
    deps,
  )
}

/**
 * `*.b.example.com` for `a.b.example.com`: a wildcard certificate name covers one label, so the
 * parent of the host; a host directly under a public suffix-like parent (`a.com`) keeps its own name.
 */
export function parentWildcard(host: string): string {
  const dot = host.indexOf('.')
  const parent = host.slice(dot + 1)
  // OpenSSL (Python, pip, curl's OpenSSL builds) lets `*` stand only for letters, digits and hyphens:
  // `my_host.example.com` under `*.example.com` fails there, so such a label gets a leaf of its own.
  return dot > 0 && parent.includes('.') && /^[a-z0-9-]+$/.test(host.slice(0, dot)) ? `*.${parent}` : host
}

/** A request line (`GET /x HTTP/1.1`) rather than a TLS record. */
function looksLikeHttp(bytes: Buffer): boolean {
  return /^[A-Z]{3,12} \S+ HTTP\/1\.[01]\r?\n/.test(bytes.subarray(0, 2048).toString('latin1'))
}

/** A ClientHello's server name as a record keeps it: normalised, else its printable ASCII; at most 255. */
function recordedSni(sni: string | null): string | undefined {
  if (sni === null) return undefined
  return (normalizeHost(sni) ?? sni.replace(/[^\x21-\x7e]/g, '?')).slice(0, 255)
}

/**
 * No domain fronting: the ClientHello must name the CONNECT host. A client
 * that is not speaking TLS, or sends no SNI for a named host, cannot be
 * checked, so it is refused too (fail closed). IP-literal hosts carry no SNI.
 */
export function checkServerName(hello: HelloOutcome, host: string): DenyDecision | null {
  const deny = (detail: string): DenyDecision => ({
    verdict: 'deny',
    reason: 'denied_sni_mismatch',
    ruleId: null,
    detail,
  })
  switch (hello.kind) {
    case 'timeout':
      return deny('client_hello_timeout')
    case 'closed':
      return deny('client_closed')
    case 'not_tls':
      return deny('not_tls')
    case 'hello': {
      if (hello.sni === null) return /^[0-9.]+$|:/.test(host) ? null : deny('sni_missing')
      return normalizeHost(hello.sni) === host ? null : deny('sni_differs')
    }
  }
}

/**
 * A CONNECT refused after the agent authenticated. Recorded once, as the CONNECT's decision. Most
 * clients drop the body of a refused CONNECT and print only "403", so for an agent that trusts the CA
 * (tls.explain_denials) the CONNECT is answered 200, the client's TLS is terminated with a leaf for
 * the host, and its first request gets the denial a plain request would get, then the connection
 * closes; nothing goes upstream. The leaf costs a request of the agent's budget; without one left, or
 * on a port where the client cannot be expected to speak TLS (explainedDenialPorts), the bare 403
 * (with its body) is what it gets.
 */
async function refuse(
  deps: ProxyDeps,
  socket: Socket,
  req: IncomingMessage,
  facts: DecisionFacts,
  d: DenyDecision,
  explainable?: { readonly agent: CompiledAgent; readonly key: string; readonly head: Buffer },
): Promise<void> {
  settle(deps.bus, facts, d)
  if (explainable === undefined || !explainsHere(deps, d, explainable, facts.port))
    return respondConnectDenial(socket, d, denialContext(facts, req.headers))
  if (socket.destroyed) return
  socket.write(ESTABLISHED)
  const hello = await readClientHello(socket, explainable.head, deps.config().upstream.headerTimeoutMs)
  if (hello.kind === 'not_tls' && looksLikeHttp(hello.bytes)) {
    // Plain HTTP in the tunnel (undici sends http:// URLs this way): its request gets the denial in clear.
    const inner = firstRequestLine(hello.bytes)
    const shown = inner === null ? facts : { ...facts, scheme: 'http' as const, method: inner.method, path: inner.path }
    const ctx = denialContext(shown, req.headers, inner?.query)
    return respondRawDenial(socket, d, inner === null ? ctx : { ...ctx, approvalOpens: connectTarget(facts) })
  }
  if (hello.kind !== 'hello') return void socket.destroy()
  explainInTls(deps, socket, hello.bytes, facts.host, facts, d)
}

/**
 * Is this denial explained in HTTP inside TLS (tls.explain_denials)? For an agent that trusts the
 * CA, on a port where its client speaks TLS (`port`: the CONNECT's, before the client has said
 * anything; null once it sent a ClientHello), while a request of its budget pays for the leaf; never
 * for a rate limit (it would spend more).
 */
function explainsHere(
  deps: ProxyDeps,
  d: DenyDecision,
  explainable: { readonly agent: CompiledAgent; readonly key: string },
  port: number | null,
): boolean {
  const ports = explainedDenialPorts(deps.config().policy, explainable.agent.id)
  return (
    deps.interceptor !== null &&
    ports !== null &&
    (port === null || ports.has(port)) &&
    d.reason !== 'denied_rate_limited' &&
    'ok' in deps.limiter.admitRequest(explainable.key, explainable.agent.limits)
  )
}

/** Complete the client's TLS with a leaf for `leafName` and answer its first request with the denial, then close. */
function explainInTls(
  deps: ProxyDeps,
  socket: Socket,
  hello: Buffer,
  leafName: string,
  facts: DecisionFacts,
  d: DenyDecision,
): void {
  deps.interceptor?.explain(socket, hello, leafName, (inner, res) => {
    const { path, query } = innerTarget(inner.url)
    respondDenial(
      res,
      d,
      {
        ...denialContext({ ...facts, method: (inner.method ?? 'GET').toUpperCase(), path }, inner.headers, query),
        approvalOpens: connectTarget(facts),
      },
      true,
    )
  })
}

/** A CONNECT as its approval names it (describeApproval): `CONNECT host:port`. */
function connectTarget(facts: DecisionFacts): string {
  return `CONNECT ${formatAuthority(facts.host, facts.port)}`
}

/** The method, path and query of the request line that starts `bytes`, or null when there is none. */
function firstRequestLine(bytes: Buffer): { method: string; path: string; query: string } | null {
  const end = bytes.indexOf('\r\n')
  const m = /^([A-Z]{1,20}) (\S{1,8192}) HTTP\/1\.[01]$/.exec(bytes.toString('latin1', 0, end < 0 ? 0 : end))
  if (m === null) return null
  return { method: m[1] as string, ...innerTarget(m[2]) }
}

/** The path (normalised when it can be) and query of an inner request target, for a denial body. */
function innerTarget(url: string | undefined): { path: string; query: string } {
  const raw = (url ?? '/').replace(/^https?:\/\/[^/?#]*/i, '') || '/'
  const { path, query } = splitTarget(raw.startsWith('/') ? raw : `/${raw}`)
  return { path: normalizePath(path) ?? path, query }
}
