import type { ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { assertNever, type DenyReason } from '../policy/reasons.js'
import type { DenyDecision } from '../policy/types.js'
import { formatAuthority } from '../net/host.js'
import { isApprovable } from '../policy/approvals.js'
import type { UpstreamFailureKind } from '../net/dial.js'

/**
 * The ONLY writer of denials. Status from reason, the two X-Portcullis headers,
 * and a one-paragraph body an agent can relay to a human. Bodies are templates
 * over validated facts: never a stack trace or an error message.
 */
export interface DenialContext {
  readonly requestId: string
  readonly agent: string | null
  readonly method: string
  readonly host: string
  readonly port: number
  readonly scheme: 'http' | 'https'
  readonly path: string | null
  /** Raw query string without `?` ('' when none); shown so the agent sees exactly what was refused. */
  readonly query: string
  readonly wantsJson: boolean
  /** A registry request refused by package rules: the package and version (shown in the JSON answer). */
  readonly package?: { readonly name: string; readonly version: string | null }
  /**
   * What approving this denial opens, when more than the request shown: a denied CONNECT explained
   * inside TLS shows its first request, but its approval opens the CONNECT (`host:port`, every path).
   */
  readonly approvalOpens?: string
}

const SENTENCES: Record<DenyReason, string> = {
  denied_no_rule: 'no rule allows this host',
  denied_by_rule: 'a deny rule matches this request',
  denied_port: 'this port is not allowed for this host',
  denied_method: 'this method is not allowed for this host',
  denied_path: 'this path is not allowed for this host',
  denied_private_address: 'the host resolves to a private or special-purpose address',
  denied_sni_mismatch: 'the TLS server name does not match the CONNECT host',
  denied_host_mismatch: 'the Host header does not match the CONNECT host',
  denied_auth_required: 'proxy credentials are required (user = agent id, password = token)',
  denied_auth_invalid: 'the proxy credentials are not valid',
  denied_rate_limited: 'the agent has exceeded its rate limit',
  denied_secret_detected: 'the request carries what looks like a secret',
  denied_git_push: 'this push is not allowed: agents push their own branches and open pull requests',
  denied_repo_write: 'this write to the repository is not allowed for agents',
  denied_package: 'this package or version is not allowed by the registry rules',
  denied_internal_error: 'the policy could not be evaluated, so the proxy failed closed',
  upstream_error: 'the upstream server could not be reached',
}

const UPSTREAM_SENTENCES: Record<UpstreamFailureKind, string> = {
  timeout: 'the upstream server did not answer in time',
  refused: 'the upstream server refused the connection',
  reset: 'the upstream server reset the connection',
  no_answer: 'the upstream server closed the connection without answering',
  bad_answer: 'the upstream server sent an answer that is not valid HTTP (or not TLS, where TLS was expected)',
  dns: 'the upstream host name could not be resolved',
  unreachable: 'the upstream server is unreachable',
  tls_verify:
    "the upstream server's TLS certificate could not be verified (wrong name, untrusted issuer, expired, or a key or signature too weak), so the proxy did not connect",
  head_too_large:
    "the upstream server's answer head (or a chunk line or its trailers) is larger than the 64 KiB the proxy accepts",
  tls_handshake:
    'the TLS handshake with the upstream server failed (no protocol version or cipher in common, or it refused the handshake), so the proxy did not connect',
  encoded_answer:
    'the upstream server compressed an answer that the proxy must read to keep the credential it added out of it, though it was asked not to',
  out_of_descriptors:
    'the proxy has run out of file descriptors (too many open connections on the proxy host); this is not a network fault and should clear when connections close',
}

function isUpstreamFailureKind(detail: string): detail is UpstreamFailureKind {
  return Object.hasOwn(UPSTREAM_SENTENCES, detail)
}

/** Denials whose detail says more than the reason's sentence. */
const DETAIL_SENTENCES: Readonly<Record<string, string>> = {
  path_too_long: 'the path is longer than the 8 KiB the proxy decides on, so it is refused',
  read_only: 'the repository is read-only for this agent: pushing needs access: write on its rule',
  needs_interception:
    'a rule allows this host only for some methods or paths, but interception is off for it (intercept: never, or tls.intercept: never), so the proxy cannot see the method or path and refuses the connection',
  ambiguous_path: 'the path reads differently to servers that decode %2F, %5C or ;params, and one reading is malformed',
}

function sentenceFor(d: DenyDecision): string {
  if (d.explanation !== undefined) return d.explanation.replace(/\.$/, '')
  if (d.detail !== undefined && Object.hasOwn(DETAIL_SENTENCES, d.detail)) return DETAIL_SENTENCES[d.detail] as string
  if (d.reason === 'upstream_error' && d.detail !== undefined && isUpstreamFailureKind(d.detail))
    return UPSTREAM_SENTENCES[d.detail]
  return SENTENCES[d.reason]
}

export function statusFor(d: DenyDecision): number {
  const r = d.reason
  switch (r) {
    case 'denied_auth_required':
    case 'denied_auth_invalid':
      return 407
    case 'denied_rate_limited':
      return 429
    case 'upstream_error':
      return d.detail === 'timeout' ? 504 : 502
    case 'denied_no_rule':
    case 'denied_by_rule':
    case 'denied_port':
    case 'denied_method':
    case 'denied_path':
    case 'denied_private_address':
    case 'denied_sni_mismatch':
    case 'denied_host_mismatch':
    case 'denied_secret_detected':
    case 'denied_git_push':
    case 'denied_repo_write':
    case 'denied_package':
    case 'denied_internal_error':
      return 403
    default:
      return assertNever(r)
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  417: 'Expectation Failed',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

/** A query string is shown for context, not in full: a body stays one readable paragraph. */
const MAX_SHOWN_QUERY = 200

function target(ctx: DenialContext): string {
  if (ctx.method === 'CONNECT') return formatAuthority(ctx.host, ctx.port)
  const defaultPort = ctx.scheme === 'https' ? 443 : 80
  const auth =
    ctx.port === defaultPort ? formatAuthority(ctx.host, 0).replace(/:0$/, '') : formatAuthority(ctx.host, ctx.port)
  const query = ctx.query.length > MAX_SHOWN_QUERY ? `${ctx.query.slice(0, MAX_SHOWN_QUERY)}…` : ctx.query
  return `${ctx.scheme}://${auth}${ctx.path ?? '/'}${query ? `?${query}` : ''}`
}

/** A 407: the client's credentials were missing or refused, so who it is was not established. */
function asksForCredentials(d: DenyDecision): boolean {
  return d.reason === 'denied_auth_required' || d.reason === 'denied_auth_invalid'
}

export function denialBody(d: DenyDecision, ctx: DenialContext): { contentType: string; body: string } {
  const isPolicy = d.reason !== 'upstream_error'
  // A 407 never names the agent the client claimed: the same answer for a wrong token and an unknown
  // id, or anyone could learn which agent ids exist. The record keeps the claimed id for analysts.
  const agent = asksForCredentials(d) ? null : ctx.agent
  const who = agent ? ` for agent ${agent}` : ''
  // Only what an approval can override gets the approve hint; a rate limit or a failed login does not.
  const approve = isApprovable(d.reason) ? `portcullis approve ${ctx.requestId}` : null
  const opens =
    ctx.approvalOpens === undefined ? '' : `, which opens ${ctx.approvalOpens} to this agent, not only this request`
  // `npx portcullis …` works from a checkout where the CLI is not on PATH.
  const tail = !isPolicy
    ? `This is a network failure past the proxy, not a policy decision. Request id ${ctx.requestId}.`
    : d.detail === 'revocations_unknown'
      ? `This is a passing state of the proxy, not of your credential: retry through the proxy in a minute; another route will not help. Request id ${ctx.requestId}.`
      : `This is a policy decision, not a network fault; retrying by another route will not help. Request id ${ctx.requestId}${approve ? `; an admin can approve it with: ${approve} (or npx ${approve})${opens}` : '.'}`
  const message = `portcullis ${isPolicy ? 'blocked' : 'could not complete'} ${ctx.method} ${target(ctx)}${who}: ${sentenceFor(d)}. ${tail}`
  if (!ctx.wantsJson) return { contentType: 'text/plain; charset=utf-8', body: `${message}\n` }
  // `error` is the field npm (and other registry clients) print from a JSON error body.
  const json = {
    error: message,
    reason: d.reason,
    detail: d.detail ?? null,
    request_id: ctx.requestId,
    agent,
    method: ctx.method,
    host: ctx.host,
    path: ctx.path,
    query: ctx.query || null,
    rule: d.ruleId,
    ...(ctx.package === undefined ? {} : { package: ctx.package.name, version: ctx.package.version }),
    message,
    approve_command: approve,
    ...(approve !== null && ctx.approvalOpens !== undefined ? { approve_opens: ctx.approvalOpens } : {}),
  }
  return { contentType: 'application/json', body: `${JSON.stringify(json)}\n` }
}

function denialHeaders(d: DenyDecision, ctx: DenialContext, contentType: string, body: string): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': contentType,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    'x-portcullis-decision': d.reason,
    'x-portcullis-request-id': ctx.requestId,
  }
  if (asksForCredentials(d)) h['proxy-authenticate'] = 'Basic realm="portcullis"'
  if (d.reason === 'denied_rate_limited') h['retry-after'] = String(Math.max(1, Math.ceil(d.retryAfterS ?? 1)))
  return h
}

/** Deny an HTTP request (plain or inside an interception). The connection stays usable unless `close`. */
export function respondDenial(res: ServerResponse, d: DenyDecision, ctx: DenialContext, close = false): void {
  const { contentType, body } = denialBody(d, ctx)
  const headers = denialHeaders(d, ctx, contentType, body)
  if (close) headers.connection = 'close'
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.writeHead(statusFor(d), headers)
  res.end(body)
}

/**
 * Deny a CONNECT on the raw socket, before any 200. Always `Connection: close`:
 * git and curl then report the status and the body cleanly instead of retrying
 * on a half-used connection.
 */
export function respondConnectDenial(socket: Duplex, d: DenyDecision, ctx: DenialContext): void {
  respondRawDenial(socket, d, ctx)
}

/** A denial written straight to a socket (a CONNECT, a WebSocket upgrade), closing it. */
export function respondRawDenial(socket: Duplex, d: DenyDecision, ctx: DenialContext): void {
  const { contentType, body } = denialBody(d, ctx)
  const headers = denialHeaders(d, ctx, contentType, body)
  headers.connection = 'close'
  writeRaw(socket, statusFor(d), headers, body)
}

/**
 * A refused git push, answered the way git reads it: 200 with the receive-pack report-status the
 * push-gate built (`ng <ref> <reason>` per ref, in the side band git asked for), so `git push` prints
 * `! [remote rejected] … (portcullis: …)`. The X-Portcullis headers say the same for anyone else.
 */
export function respondGitRefusal(
  res: ServerResponse,
  d: DenyDecision,
  requestId: string,
  answer: { readonly contentType: string; readonly body: Buffer },
): void {
  if (res.headersSent) return void res.destroy()
  res.shouldKeepAlive = false
  res.writeHead(200, {
    'content-type': answer.contentType,
    'content-length': String(answer.body.length),
    'cache-control': 'no-cache',
    'x-portcullis-decision': d.reason,
    'x-portcullis-request-id': requestId,
    connection: 'close',
  })
  res.end(answer.body)
}

/** A request the proxy cannot take, in words: what was wrong with it (by status) and what to send instead. */
function unacceptableText(status: number, detail: string): string {
  if (detail === 'missing_host')
    return `portcullis could not parse this request (missing_host): HTTP/1.1 requires a Host header naming the host. Send one.\n`
  if (detail === 'bad_path')
    return `portcullis could not read this request's path (bad_path): a malformed %-escape, a control character, a space or backslash, or a path parameter that hides a segment. Send the path percent-encoded as RFC 3986 says.\n`
  switch (status) {
    case 408:
      return `portcullis closed this connection: the request head did not arrive within the proxy's header timeout (${detail}).\n`
    case 405:
      return `portcullis does not open a tunnel inside a tunnel (${detail}): this connection already leads to one host. Send that host's requests on it, or CONNECT to another host through the proxy itself.\n`
    case 417:
      return `portcullis does not support this Expect header (${detail}); only Expect: 100-continue is understood. Send the request without it.\n`
    case 505:
      return `portcullis speaks HTTP/1.1 and HTTP/1.0 to clients (${detail}). Send the request as HTTP/1.1.\n`
    case 431:
      return `portcullis refused this request: its header fields are larger than the proxy accepts (${detail}). Send fewer or shorter headers.\n`
    default: {
      const hint = Object.hasOwn(HINTS_400, detail)
        ? HINTS_400[detail]
        : 'It is malformed or ambiguous (two framings, a duplicated or folded field, bad chunking), and the connection is closed; send it as RFC 9112 says.'
      return `portcullis could not parse this request (${detail}). ${hint}\n`
    }
  }
}

/** What to send instead, for the 400s whose cause a client can act on. */
const HINTS_400: Readonly<Record<string, string>> = {
  origin_form: 'Send an absolute-form request (GET http://host/path) or CONNECT host:port through the proxy.',
  bad_target: 'Send an absolute-form request (GET http://host/path) or CONNECT host:port through the proxy.',
  bad_connect_target: 'Send CONNECT host:port, with the port.',
  duplicate_proxy_authorization: 'Send one Proxy-Authorization header.',
  upgrade_not_supported:
    'Only WebSocket upgrades are relayed (Upgrade: websocket on an HTTP/1.1 GET); send the request without Upgrade, or as a WebSocket handshake.',
  upgrade_with_body: 'A WebSocket handshake carries no body; send it without one.',
  bad_websocket_handshake:
    'A WebSocket handshake carries Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key (the base64 of 16 random bytes).',
  paused_h2_upgrade: 'The proxy speaks HTTP/1.1 on this connection; send HTTP/1.1 (offer http/1.1 in ALPN).',
}

/** A request the proxy cannot take, on a ServerResponse (the parser read it): the answer, then the connection closes. */
export function respondUnacceptable(res: ServerResponse, status: 400 | 417 | 431 | 505, detail: string): void {
  const body = unacceptableText(status, detail)
  res.shouldKeepAlive = false
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  })
  res.end(body)
}

/**
 * The same on a bare socket (the parser refused the head, a head deadline passed, a CONNECT inside a
 * tunnel): a protocol-level refusal, not a policy decision, so no record.
 */
export function respondBadRequest(socket: Duplex, status: 400 | 405 | 408 | 431 | 505, detail: string): void {
  const body = unacceptableText(status, detail)
  writeRaw(
    socket,
    status,
    {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      connection: 'close',
    },
    body,
  )
}

function writeRaw(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy()
    return
  }
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n`
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
  socket.end(`${head}\r\n${body}`)
  // end() flushes then half-closes; destroy soon after so a client that never reads cannot hold the socket.
  socket.once('finish', () => setTimeout(() => socket.destroy(), 1000).unref())
}
