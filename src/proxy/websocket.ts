import { createHash } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect, type SecureContext } from 'node:tls'
import { checkUpstreamIdentity } from '../net/upstream-tls.js'
import type { Handling } from '../policy/decide.js'
import type { DenyDecision } from '../policy/types.js'
import type { PackageFacts } from '../telemetry/events.js'
import { packageOfRequest } from './package-gate.js'
import { denialContext, settle } from './decision-point.js'
import type { ProxyDeps } from './deps.js'
import { openConnection } from './connection.js'
import { carryRequest } from './plain-exchange.js'
import type { InFlightRequest } from './tracker.js'
import { addProxyFields, endToEnd, upstreamFailureOf, VIA } from './forward.js'
import { decideHttpRequest, type RequestChannel } from './request-flow.js'
import { refuseMalformed } from './bad-requests.js'
import { bodyAnnounced } from './linger.js'
import { respondBadRequest, respondRawDenial } from './respond.js'
import type { Credential } from '../identity/authenticate.js'

/**
 * WebSocket (`Upgrade: websocket`) through the proxy, on every flow (absolute-form on the listener,
 * inside an intercepted connection, plain HTTP inside a tunnel). The upgrade request is decided like
 * any request (request-flow.ts: host, path, method GET, limits) and recorded; a refusal is the usual
 * denial. Allowed, it is sent to the checked address (TLS verified as for any request), and the
 * upstream's answer is relayed: a 101 splices the two connections (frames flow untouched, both ways),
 * anything else is passed on and the connection closed. From the moment it is sent upstream, the
 * request is tracked like a tunnel's, so a reload, an approval's end or a revocation that no longer
 * allows it closes it, whether the 101 has come yet or not. Its bytes count once: on the listener the
 * spliced connection has its own close record; inside a CONNECT (`within`) the CONNECT's connection
 * carries the request and its close record counts the bytes (those of the client connection, which
 * the WebSocket now is), as for any request inside it. Other upgrades are refused with a 400 (an h2c upgrade without a body is declined and answered over
 * HTTP/1.1 before it gets here: server.ts declineH2cUpgrade).
 */
export async function relayUpgrade(
  deps: ProxyDeps,
  req: IncomingMessage,
  client: Duplex & Socket,
  head: Buffer,
  channel: RequestChannel,
  within: CarryingConnection | null,
): Promise<void> {
  client.on('error', () => client.destroy())
  const upgrade = (req.headers.upgrade ?? '').toLowerCase()
  // Upgrade is HTTP/1.1's (RFC 9110 §7.8): an HTTP/1.0 request naming it is not switched.
  const listener = channel.kind === 'proxy' ? 'proxy' : 'tunnel'
  if (upgrade !== 'websocket' || (req.method ?? '').toUpperCase() !== 'GET' || req.httpVersion !== '1.1')
    return refuseMalformed(deps.badRequests, client, listener, 400, 'upgrade_not_supported')
  // A handshake has no body (RFC 6455 §4.1); node's parser stops at the head of an upgrade, so a body
  // would reach the origin as frames or as a request of its own, or leave it waiting for a length.
  if (bodyAnnounced(req)) return refuseMalformed(deps.badRequests, client, listener, 400, 'upgrade_with_body')
  // A handshake the proxy can hold the origin's answer to (RFC 6455 §4.1): without a key, a 101 could
  // not be told from an origin that answers 101 to anything (httpbin's /status/101), which would leave
  // the client speaking raw HTTP to it, to paths no rule allows.
  const key = req.headers['sec-websocket-key']
  if (!isHandshakeKey(key) || req.headers['sec-websocket-version'] !== '13')
    return refuseMalformed(deps.badRequests, client, listener, 400, 'bad_websocket_handshake')
  const verdict = await decideHttpRequest(deps, req, channel)
  switch (verdict.kind) {
    case 'malformed':
      return respondBadRequest(client, verdict.status, verdict.detail)
    case 'drop':
      return void client.destroy()
    case 'deny':
      return respondRawDenial(client, verdict.decision, denialContext(verdict.facts, req.headers, verdict.query))
    case 'pass':
      break
  }
  const { target, handling } = verdict
  // A rule that must read what crosses cannot be kept on a WebSocket, whose frames leave unread: its
  // upgrade fails closed (audit mode lets it pass, recorded as would_deny, like any request it would refuse).
  const unkept = verdict.decision.verdict === 'allow' ? unkeptRule(handling, target.requestTarget) : null
  const decision = unkept?.decision ?? verdict.decision
  const facts = unkept?.pkg === undefined ? verdict.facts : { ...verdict.facts, package: unkept.pkg }
  const { pass } = settle(deps.bus, facts, decision)
  if (!pass) return respondRawDenial(client, decision as DenyDecision, denialContext(facts, req.headers, verdict.query))
  const headers = endToEnd(req.rawHeaders, new Set(['host', 'via']))
  addProxyFields(headers, target, req.headers.via)
  headers.push('connection', 'Upgrade', 'upgrade', 'websocket')
  const cfg = deps.config().upstream
  const tls = deps.forwarder.tlsContext
  const options = {
    method: 'GET',
    path: target.requestTarget,
    headers,
    // The request's timer applies only once connected: the connection (TLS included) has connect_timeout_ms.
    createConnection: () =>
      withConnectTimeout(
        target.tls
          ? tlsConnect({
              host: target.address,
              port: target.port,
              servername: /^[0-9.]+$|:/.test(target.host) ? '' : target.host,
              secureContext: tls as SecureContext,
              rejectUnauthorized: true,
              checkServerIdentity: checkUpstreamIdentity,
            })
          : netConnect({ host: target.address, port: target.port }),
        target.tls ? 'secureConnect' : 'connect',
        cfg.connectTimeoutMs,
      ),
  }
  const upstreamReq = target.tls ? httpsRequest(options) : httpRequest(options)
  // Tracked from now: a change made while the 101 is awaited (a narrowed rule, a revoked or expired
  // approval or credential) closes the client, and so the upstream request, as it closes a pending GET.
  const request: InFlightRequest = { method: facts.method, path: facts.path ?? '/', scheme: facts.scheme }
  // Nothing is counted until the splice, which has its own connection: an account() of its own, which
  // carryRequest's stop function tells from a later carry's.
  const pending = within === null ? carryRequest(deps, client, facts, verdict.credential, { account: () => {} }) : null
  within?.carry(request, client)
  let clientLeft = false
  const fail = (err: unknown): void => {
    // A client that left before the answer is no upstream failure: nothing to record or answer.
    if (clientLeft) return void client.destroy()
    if (client.destroyed) return
    const d: DenyDecision = {
      verdict: 'deny',
      reason: 'upstream_error',
      ruleId: null,
      detail: upstreamFailureOf(deps.log, target, err),
    }
    settle(deps.bus, facts, d)
    respondRawDenial(client, d, denialContext(facts, req.headers, verdict.query))
  }
  // Silence while waiting for the answer ends in a 504; the splice then has its own timer.
  upstreamReq.setTimeout(cfg.idleTimeoutMs, () =>
    upstreamReq.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
  )
  upstreamReq.on('error', fail)
  // Until the answer, the client is read (node leaves an upgraded socket paused, and a paused socket
  // never sees its peer leave): what it sends early waits, bounded, and its leaving ends the upstream
  // request. The connection's own idle timer stops meanwhile; the upstream's timer answers for both.
  client.setTimeout(0)
  let early = head
  const onEarly = (chunk: Buffer): void => {
    early = Buffer.concat([early, chunk])
    if (early.length > MAX_EARLY_BYTES) client.destroy()
  }
  const gone = (): void => {
    clientLeft = true
    upstreamReq.destroy()
  }
  client.on('data', onEarly)
  client.once('end', gone)
  client.once('close', gone)
  client.resume()
  const answered = (): void => {
    client.off('data', onEarly)
    client.off('end', gone)
    client.pause()
  }
  upstreamReq.on('response', (res) => {
    answered()
    // A 101 node did not take for a switch (no Upgrade, or no Connection: upgrade): no answer to pass on.
    if (res.statusCode === 101) {
      res.destroy()
      return fail(Object.assign(new Error('101 without a protocol to switch to'), { code: 'HPE_INVALID_UPGRADE' }))
    }
    client.once('close', () => res.destroy())
    // Not switching: pass the answer on as it is (end to end), then close.
    const lines = [`HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}`]
    const h = endToEnd(res.rawHeaders)
    for (let i = 0; i < h.length; i += 2) lines.push(`${h[i]}: ${h[i + 1]}`)
    lines.push(`Via: ${VIA}`, 'Connection: close')
    client.write(`${lines.join('\r\n')}\r\n\r\n`)
    res.pipe(client)
  })
  upstreamReq.on('upgrade', (res, upstream: Socket, upstreamHead: Buffer) => {
    answered()
    // A switch to anything but the WebSocket asked for (h2c, a raw stream) would splice bytes the
    // proxy decides nothing about: the next "frames" could be requests to any path of the host.
    if ((res.headers.upgrade ?? '').trim().toLowerCase() !== 'websocket') {
      upstream.destroy()
      return fail(Object.assign(new Error('101 to another protocol than websocket'), { code: 'HPE_INVALID_UPGRADE' }))
    }
    // Only an origin that read this handshake answers with its key's digest (RFC 6455 §4.2.2): any other
    // 101 is no WebSocket, and what the client sent next would reach the origin as it is.
    if (res.headers['sec-websocket-accept'] !== acceptFor(key)) {
      upstream.destroy()
      return fail(Object.assign(new Error('101 without the handshake key'), { code: 'HPE_INVALID_UPGRADE' }))
    }
    client.off('close', gone)
    const lines = ['HTTP/1.1 101 Switching Protocols']
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`)
    lines.push(`Via: ${VIA}`)
    client.write(`${lines.join('\r\n')}\r\n\r\n`)
    if (upstreamHead.length > 0) client.write(upstreamHead)
    if (early.length > 0) upstream.write(early)
    pending?.()
    splice(deps, client, upstream, within === null ? { facts, credential: verdict.credential, request } : null)
  })
  upstreamReq.end()
}

/**
 * `socket` destroyed with ETIMEDOUT unless `ready` comes within `ms`: a timer of its own, as the
 * request's socket timer is set (to idle_timeout_ms) at the TCP connect, before a TLS handshake is done.
 */
function withConnectTimeout(socket: Socket, ready: 'connect' | 'secureConnect', ms: number): Socket {
  const timer = setTimeout(
    () => socket.destroy(Object.assign(new Error('upstream connect timeout'), { code: 'ETIMEDOUT' })),
    ms,
  )
  const done = (): void => clearTimeout(timer)
  socket.once(ready, done)
  socket.once('close', done)
  return socket
}

/**
 * The refusal of an upgrade that a matching rule's handling cannot be kept on, or null:
 *  - inspect_body: the frames would leave unread;
 *  - package rules (SPEC §11): the registry's answer is relayed untouched, so a download the rules
 *    refuse, or metadata they must filter, would reach the client (a registry ignores Upgrade and
 *    answers 200). No registry speaks WebSocket: every upgrade there is refused, whatever it asks.
 * Push and API rules read only writes (a handshake is a GET), and inject_headers are not added to an
 * upgrade (an origin could echo them in frames no mask reads).
 */
function unkeptRule(
  handling: Handling,
  requestTarget: string,
): { readonly decision: DenyDecision; readonly pkg?: PackageFacts } | null {
  if (handling.inspectBody)
    return {
      decision: {
        verdict: 'deny',
        reason: 'denied_secret_detected',
        ruleId: handling.ruleId,
        detail: 'uninspectable',
        explanation: UNINSPECTABLE_WEBSOCKET,
      },
    }
  if (handling.packages === null) return null
  const decision: DenyDecision = {
    verdict: 'deny',
    reason: 'denied_package',
    ruleId: handling.packagesRuleId,
    detail: 'websocket',
    explanation: UNFILTERABLE_WEBSOCKET,
  }
  const pkg = packageOfRequest(handling.packages, requestTarget)
  return pkg === null ? { decision } : { decision, pkg }
}

/**
 * Why an upgrade under inspect_body is refused: not for a secret found (the reason's own sentence, and
 * the advice to rotate one, would mislead), but because what it would carry cannot be read.
 */
const UNINSPECTABLE_WEBSOCKET =
  "an inspect_body rule applies to this request, and a WebSocket connection's content (its frames) cannot be inspected, so the rule refuses the connection"

/** Why an upgrade to a registry under package rules is refused. */
const UNFILTERABLE_WEBSOCKET =
  'package rules apply to this registry, and the answer to a WebSocket upgrade is relayed unread, so the rules could not judge or filter it; send the request without the Upgrade header'

/** A Sec-WebSocket-Key: the base64 of 16 bytes (RFC 6455 §4.1). */
function isHandshakeKey(key: string | undefined): key is string {
  return key !== undefined && /^[A-Za-z0-9+/]{22}==$/.test(key)
}

/** The Sec-WebSocket-Accept an origin that read `key` answers (RFC 6455 §4.2.2). */
function acceptFor(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
}

/** What a client may send before the upstream's answer (frames it should not send yet): past it, closed. */
const MAX_EARLY_BYTES = 64 * 1024

/** How long one side may stay half-open after the other's FIN (as for tunnels). */
const HALF_CLOSED_MS = 5000

/**
 * The connection a WebSocket inside a CONNECT rides (intercept.ts): `request` is carried until `until`
 * closes, so what the sweeps ask of the connection is the WebSocket's request, and its bytes are the
 * connection's (counted once, in its close record).
 */
export interface CarryingConnection {
  carry(request: InFlightRequest, until: Socket): void
}

/** What a WebSocket upgrade on the listener is decided on, for its tracking and close record. */
interface UpgradeFacts {
  readonly id: string
  readonly agent: string | null
  readonly host: string
  readonly port: number
  readonly method: string
  readonly path: string | null
  readonly scheme: 'http' | 'https'
  readonly address: string | null
  readonly sandbox?: string | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
}

/**
 * Both ways until either side ends. `own`: on the listener, the splice is a connection of its own
 * (tracked like a tunnel, with one close record); inside a CONNECT (null) the CONNECT's connection
 * tracks and counts it (relayUpgrade's `within`).
 */
function splice(
  deps: ProxyDeps,
  client: Socket,
  upstream: Socket,
  own: { readonly facts: UpgradeFacts; readonly credential: Credential; readonly request: InFlightRequest } | null,
): void {
  const close = (): void => {
    client.destroy()
    upstream.destroy()
  }
  upstream.on('error', close)
  client.on('error', close)
  client.setTimeout(deps.config().upstream.idleTimeoutMs, close)
  const connection = own === null ? null : openSplice(deps, client, upstream, own, close)
  const finish = (): void => {
    close()
    connection?.finish()
  }
  client.once('close', finish)
  upstream.once('close', finish)
  // One side's FIN ends the other's writes (pipe does that); both are closed a little later at the
  // latest, so a peer that keeps its half open cannot hold the pair.
  const halfClosed = (): void => void setTimeout(close, HALF_CLOSED_MS).unref()
  client.once('end', halfClosed)
  upstream.once('end', halfClosed)
  client.pipe(upstream)
  upstream.pipe(client)
}

/** A WebSocket on the listener: its connection, tracked like a tunnel, counting from the 101 on. */
function openSplice(
  deps: ProxyDeps,
  client: Socket,
  upstream: Socket,
  own: { readonly facts: UpgradeFacts; readonly credential: Credential; readonly request: InFlightRequest },
  close: () => void,
): ReturnType<typeof openConnection> {
  const { facts, credential } = own
  const track = {
    agent: facts.agent ?? '',
    host: facts.host,
    port: facts.port,
    via: 'intercept',
    address: upstream.remoteAddress ?? '',
    pinned: deps.config().upstream.resolve.has(facts.host),
    srcIp: (client.remoteAddress ?? '').replace(/^::ffff:/, ''),
    credential,
    request: own.request,
    close,
  } as const
  return openConnection(deps, {
    facts,
    credential,
    startedAtMs: Date.now(),
    bytes: { socket: client, upIsRead: true, upAt: client.bytesRead, downAt: client.bytesWritten },
    track,
  })
}
