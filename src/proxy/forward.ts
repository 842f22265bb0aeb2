import {
  Agent as HttpAgent,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import { createSecureContext } from 'node:tls'
import httpProxy from 'http-proxy'
import { formatAuthority } from '../net/host.js'
import { mapSocketError, type UpstreamFailureKind } from '../net/dial.js'
import { createSecretMasker, maskText } from './response-redact.js'
import type { InjectHeader } from '../policy/compiled.js'

/**
 * RFC 9110 §7.6.1 hop-by-hop fields, plus the proxy's own credentials, which never travel upstream,
 * and `Expect`: the proxy answers 100-continue itself, once the request is allowed.
 */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]

/**
 * Headers a `Connection` field may not remove: `Connection: content-length` would strip the body's
 * length and leave the body on the upstream connection as a second, undecided request.
 */
const NOT_REMOVABLE = new Set(['content-length', 'host'])

export const VIA = '1.1 portcullis'

/** Strip hop-by-hop headers, including every header the Connection field names (except the framing ones). */
export function stripHopByHop(headers: IncomingHttpHeaders): void {
  const named = headers.connection
  if (named) {
    const list = Array.isArray(named) ? named.join(',') : named
    for (const token of list.split(',')) {
      const name = token.trim().toLowerCase()
      if (name && !NOT_REMOVABLE.has(name)) delete headers[name]
    }
  }
  for (const h of HOP_BY_HOP) delete headers[h]
}

const kContinueSent = Symbol('portcullis.continueSent')

/**
 * `Expect: 100-continue` is answered by the proxy, once the request is allowed (server.ts
 * expectContinue holds node's automatic answer back): before its body is read for inspection, or
 * before it is forwarded. Once per request.
 */
export function sendContinue(req: IncomingMessage, res: ServerResponse & { [kContinueSent]?: boolean }): void {
  if (res[kContinueSent] || !/^100-continue$/i.test(req.headers.expect ?? '')) return
  res[kContinueSent] = true
  res.writeContinue()
}

/** Set on a request whose body arrived chunked, so it is sent upstream chunked (see createForwarder). */
const kChunkedBody = Symbol('portcullis.chunkedBody')
/** The secrets injected into a request, masked in its response (response-redact.ts). */
const kInjected = Symbol('portcullis.injectedSecrets')
type ForwardedRequest = IncomingMessage & { [kChunkedBody]?: boolean; [kInjected]?: readonly string[] }

/**
 * An upstream that echoes the request (headers, a debug page, an error) must not hand the injected
 * credential to the sandbox: mask it in the response's header values and body, as they go out.
 */
function maskResponse(proxyRes: IncomingMessage, res: ServerResponse, secrets: readonly string[]): void {
  for (const [name, value] of Object.entries(proxyRes.headers)) {
    if (typeof value === 'string') proxyRes.headers[name] = maskText(value, secrets)
    else if (Array.isArray(value)) proxyRes.headers[name] = value.map((v) => maskText(v, secrets))
  }
  const masker = createSecretMasker(secrets.map((s) => Buffer.from(s)))
  const write = res.write.bind(res) as (chunk: Buffer) => boolean
  const end = res.end.bind(res) as (chunk?: Buffer) => ServerResponse
  const asBuffer = (c: unknown): Buffer => (Buffer.isBuffer(c) ? c : Buffer.from(String(c)))
  res.write = ((chunk: unknown) => write(masker.push(asBuffer(chunk)))) as typeof res.write
  res.end = ((chunk?: unknown) => {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') write(masker.push(asBuffer(chunk)))
    return end(masker.flush())
  }) as typeof res.end
}

function appendVia(headers: IncomingHttpHeaders): void {
  const prior = headers.via
  headers.via = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${VIA}` : VIA
}

export interface ForwardTarget {
  /** The checked address to dial. */
  readonly address: string
  readonly port: number
  /** Host as the client named it (Host header, SNI and certificate name upstream). */
  readonly host: string
  readonly tls: boolean
  /** Origin-form request target to send (normalised path + query). */
  readonly requestTarget: string
  /** Headers added upstream (inject_headers, secrets resolved), replacing any the client sent by that name. */
  readonly inject?: readonly InjectedHeader[]
  /** The body, already read (inspect_body, API writes), to send instead of the request stream. */
  readonly body?: Buffer
  /** The body, held elsewhere (a push spilled to disk), replayed as a stream of `bytes` bytes. */
  readonly replay?: { readonly stream: Readable; readonly bytes: number }
}

export interface InjectedHeader {
  readonly name: string
  readonly value: string
  /** The secret alone (what is masked if the upstream sends it back). */
  readonly secret: string
}

/**
 * inject_headers with their secrets from the proxy's environment, or the first variable that is
 * unset (the request then fails closed: sending it without the credential would only fail later,
 * less clearly). The secret never enters the sandbox: only the proxy's environment holds it.
 */
export function resolveInjections(
  specs: readonly InjectHeader[],
  env: NodeJS.ProcessEnv,
): readonly InjectedHeader[] | { readonly missing: string } {
  const out: InjectedHeader[] = []
  for (const h of specs) {
    const secret = env[h.env]
    if (secret === undefined || secret === '') return { missing: h.env }
    const value =
      h.basicUser === undefined
        ? h.format.replaceAll('{}', secret)
        : `Basic ${Buffer.from(`${h.basicUser}:${secret}`).toString('base64')}`
    out.push({ name: h.name.toLowerCase(), value, secret })
  }
  return out
}

export interface Forwarder {
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    onFailure: (kind: UpstreamFailureKind) => void,
  ): void
  close(): void
}

function timeoutError(): Error {
  return Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })
}

/**
 * connect_timeout_ms until the upstream connection is up, then idle_timeout_ms of silence; once the
 * answer has started, its head must be complete within response_header_timeout_ms (an upstream that
 * sends a status line and then a byte a second is never idle, and its head could take hours).
 */
function armUpstreamTimeouts(proxyReq: ClientRequest, opts: ForwarderOptions): void {
  proxyReq.setTimeout(opts.idleTimeoutMs, () => proxyReq.destroy(timeoutError()))
  // http-proxy emits proxyReq from the request's 'socket' event: the socket is there already.
  const socket = proxyReq.socket
  if (socket) armResponseHeadDeadline(proxyReq, socket, opts.responseHeaderTimeoutMs)
  else proxyReq.once('socket', (s: Socket) => armResponseHeadDeadline(proxyReq, s, opts.responseHeaderTimeoutMs))
  if (!socket || !socket.connecting) return
  const timer = setTimeout(() => proxyReq.destroy(timeoutError()), opts.connectTimeoutMs)
  socket.once('connect', () => clearTimeout(timer))
  socket.once('close', () => clearTimeout(timer))
}

function armResponseHeadDeadline(proxyReq: ClientRequest, socket: Socket, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined
  const firstByte = (): void => {
    timer = setTimeout(() => proxyReq.destroy(timeoutError()), timeoutMs)
  }
  const done = (): void => {
    socket.removeListener('data', firstByte)
    clearTimeout(timer)
  }
  socket.once('data', firstByte)
  proxyReq.once('response', done)
  proxyReq.once('close', done)
}

export interface ForwarderOptions {
  readonly connectTimeoutMs: number
  readonly responseHeaderTimeoutMs: number
  readonly idleTimeoutMs: number
  /** Roots for verifying upstream TLS: system roots plus upstream.ca_file. */
  readonly ca: readonly string[]
}

/**
 * http-proxy wrapper: one proxy instance, keep-alive agents, hop-by-hop
 * stripping both ways, Via. Upstream TLS is always verified (rejectUnauthorized)
 * with the host as SNI and certificate name; a failure is reported, never bypassed.
 */
export function createForwarder(opts: ForwarderOptions): Forwarder {
  const httpAgent = new HttpAgent({
    keepAlive: true,
    maxSockets: 512,
    maxFreeSockets: 64,
    scheduling: 'lifo',
    timeout: opts.idleTimeoutMs,
  })
  // One SecureContext for the roots: passing `ca` instead would make https.Agent glue ~200 KB of PEM into its
  // pool key three times per request and re-parse every root per connection (measured: 37% of proxy CPU).
  const secureContext = createSecureContext({ ca: [...opts.ca] })
  const httpsAgent = new HttpsAgent({
    keepAlive: true,
    maxSockets: 512,
    maxFreeSockets: 64,
    scheduling: 'lifo',
    timeout: opts.idleTimeoutMs,
    secureContext,
    rejectUnauthorized: true,
  })
  const proxy = httpProxy.createProxyServer({ xfwd: false, ws: false, changeOrigin: false, secure: true })
  // Framing is the proxy's own on each hop. A body that came chunked goes upstream chunked, whatever the
  // method: node only chunks POST/PUT/PATCH by default, and http-proxy turns a DELETE/OPTIONS without a
  // length into `content-length: 0`; either would leave the body on the connection as a request no one
  // decided (smuggling). This pass runs after http-proxy's own header passes, just before the request.
  // `before` is http-proxy's API for adding a pass; @types/http-proxy does not declare it.
  ;(proxy as unknown as { before(type: 'web', pass: string, fn: (req: ForwardedRequest) => void): void }).before(
    'web',
    'stream',
    (req) => {
      if (!req[kChunkedBody]) return
      delete req.headers['content-length']
      req.headers['transfer-encoding'] = 'chunked'
    },
  )
  proxy.on('proxyReq', (proxyReq) => armUpstreamTimeouts(proxyReq, opts))
  proxy.on('proxyRes', (proxyRes, req: ForwardedRequest, res: ServerResponse) => {
    const injected = req[kInjected]
    if (injected !== undefined) maskResponse(proxyRes, res, injected)
    stripHopByHop(proxyRes.headers)
    appendVia(proxyRes.headers)
    // The client's hop: close after this response if the client asked to (Connection: close, HTTP/1.0).
    proxyRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close'
  })
  // http-proxy emits 'error' when no callback is given; keep a listener so nothing is ever unhandled.
  proxy.on('error', () => {})
  return {
    forward(req: ForwardedRequest, res, target, onFailure) {
      req[kChunkedBody] = req.headers['transfer-encoding'] !== undefined
      sendContinue(req, res)
      stripHopByHop(req.headers)
      appendVia(req.headers)
      const defaultPort = target.tls ? 443 : 80
      req.headers.host =
        target.port === defaultPort
          ? formatAuthority(target.host, 0).replace(/:0$/, '')
          : formatAuthority(target.host, target.port)
      for (const h of target.inject ?? []) req.headers[h.name] = h.value
      if (target.inject !== undefined && target.inject.length > 0) {
        req[kInjected] = target.inject.map((h) => h.secret)
        // Masking needs the answer as sent: ask for it uncompressed.
        req.headers['accept-encoding'] = 'identity'
      }
      req.url = target.requestTarget
      proxy.web(
        req,
        res,
        {
          target: { protocol: target.tls ? 'https:' : 'http:', host: target.address, port: target.port },
          agent: target.tls ? httpsAgent : httpAgent,
          ...(target.replay !== undefined
            ? { buffer: target.replay.stream }
            : target.body === undefined
              ? {}
              : { buffer: Readable.from(target.body.length > 0 ? [target.body] : []) }),
        },
        (err: Error) => onFailure(mapSocketError(err)),
      )
    },
    close() {
      httpAgent.destroy()
      httpsAgent.destroy()
      proxy.close()
    },
  }
}
