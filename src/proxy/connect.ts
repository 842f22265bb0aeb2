import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { authenticate } from '../identity/authenticate.js'
import { normalizeHost, parseAuthority } from '../net/host.js'
import { resolveChecked } from '../net/resolve.js'
import { dialChecked } from '../net/dial.js'
import { decideConnectApproved } from '../policy/approvals.js'
import { effectiveMode } from '../policy/compiled.js'
import type { DenyDecision } from '../policy/types.js'
import { newRequestId, type DecisionFacts } from '../telemetry/events.js'
import { connStateOf } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import { denialContext, settle, wantsJson } from './decision-point.js'
import { readClientHello, TLS_ALERT_UNRECOGNIZED_NAME, type HelloOutcome } from './client-hello-reader.js'
import { respondBadRequest, respondConnectDenial } from './respond.js'
import { spliceTunnel } from './tunnel.js'

const ESTABLISHED = 'HTTP/1.1 200 Connection established\r\nVia: 1.1 portcullis\r\n\r\n'

/**
 * CONNECT flow: authority → identity → decideConnect → mode → resolve (checked
 * address) → dial (tunnel only) → 200 → ClientHello/SNI check → splice or
 * intercept. Nothing reaches upstream before the SNI check passes; the
 * decision record is published once, at the final verdict.
 */
export async function handleConnect(deps: ProxyDeps, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  const state = connStateOf(socket)
  const authority = parseAuthority(req.url ?? '')
  if (!authority) return respondBadRequest(socket, 400, 'bad_connect_target')
  const cfg = deps.config()
  const id = newRequestId()
  const json = wantsJson(req.headers.accept)
  const base = { id, src: state.src, method: 'CONNECT', scheme: 'https' as const, host: authority.host, port: authority.port, path: null, address: null }
  const identity = authenticate(cfg.policy, req.headers['proxy-authorization'], state.srcIp)
  if (identity.kind === 'denied') {
    const facts: DecisionFacts = { ...base, tls: null, agent: identity.claimedAgent, mode: cfg.policy.mode }
    settle(deps.bus, facts, identity.decision)
    return respondConnectDenial(socket, identity.decision, denialContext(facts, json))
  }
  const agent = identity.agent.id
  const decision = decideConnectApproved(cfg.policy, { agent, host: authority.host, port: authority.port }, deps.approvals(), Date.now())
  const via = decision.verdict === 'allow' ? decision.via : 'tunnel'
  const facts: DecisionFacts = { ...base, tls: via, agent, mode: effectiveMode(cfg.policy, agent) }
  const auditPass = decision.verdict === 'deny' && facts.mode === 'audit' && decision.reason !== 'denied_internal_error'
  if (decision.verdict === 'deny' && !auditPass) {
    settle(deps.bus, facts, decision)
    return respondConnectDenial(socket, decision, denialContext(facts, json))
  }
  const resolved = await resolveChecked(authority.host, cfg.upstream)
  if ('verdict' in resolved) return refuse(deps, socket, facts, resolved, json)
  const checked: DecisionFacts = { ...facts, address: resolved.address }
  let up: Socket | null = null
  if (via === 'tunnel') {
    const dialled = await dialChecked(resolved.address, authority.port, cfg.upstream.connectTimeoutMs)
    if ('kind' in dialled) return refuse(deps, socket, checked, { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: dialled.failure }, json)
    up = dialled
    up.on('error', () => dialled.destroy())
  } else if (!deps.interceptor) {
    return refuse(deps, socket, checked, { verdict: 'deny', reason: 'denied_internal_error', ruleId: decision.ruleId, detail: 'interception_unavailable' }, json)
  }
  if (socket.destroyed) return void up?.destroy()
  socket.write(ESTABLISHED)
  const hello = await readClientHello(socket, head, cfg.upstream.headerTimeoutMs)
  if (hello.kind === 'closed') {
    // The client left before saying anything: the CONNECT itself was allowed and nothing flowed.
    settle(deps.bus, checked, decision)
    up?.destroy()
    return void socket.destroy()
  }
  const sniDenial = checkServerName(hello, authority.host)
  const { pass } = settle(deps.bus, checked, sniDenial ?? decision)
  if (sniDenial && (!pass || hello.kind !== 'hello')) {
    up?.destroy()
    if (hello.kind !== 'hello') return void socket.destroy()
    socket.end(TLS_ALERT_UNRECOGNIZED_NAME)
    return void setTimeout(() => socket.destroy(), 1000).unref()
  }
  const bytes = hello.kind === 'hello' || hello.kind === 'not_tls' ? hello.bytes : Buffer.alloc(0)
  if (up === null) {
    deps.interceptor?.intercept(socket, bytes, { id, agent, host: authority.host, port: authority.port, address: resolved.address, src: state.src, mode: facts.mode })
    return
  }
  spliceTunnel(socket, up, bytes, { id, agent, host: authority.host, port: authority.port, startedAtMs: Date.now() }, cfg.upstream.idleTimeoutMs, deps.bus, deps.tracker)
}

/**
 * No domain fronting: the ClientHello must name the CONNECT host. A client
 * that is not speaking TLS, or sends no SNI for a named host, cannot be
 * checked, so it is refused too (fail closed). IP-literal hosts carry no SNI.
 */
export function checkServerName(hello: HelloOutcome, host: string): DenyDecision | null {
  const deny = (detail: string): DenyDecision => ({ verdict: 'deny', reason: 'denied_sni_mismatch', ruleId: null, detail })
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

function refuse(deps: ProxyDeps, socket: Socket, facts: DecisionFacts, d: DenyDecision, json: boolean): void {
  settle(deps.bus, facts, d)
  respondConnectDenial(socket, d, denialContext(facts, json))
}
