import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import type { SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import {
  createHttp1Client,
  LINE_BREAKING,
  type Exchange,
  type Origin,
  type OutgoingRequest,
  type ResponseHandler,
} from '../net/http1-client.js'
import { formatAuthority } from '../net/host.js'
import { mapSocketError, type UpstreamFailureKind } from '../net/dial.js'
import { createUpstreamSecureContext } from '../net/upstream-tls.js'
import { atTurnEnd } from '../net/turn-batch.js'
import { CopyRing } from '../net/copy-ring.js'
import { HOP_BY_HOP } from '../net/hop-fields.js'
import { createSecretMasker, maskFields } from './response-redact.js'
import { guardIdle } from './read-body.js'
import type { InjectHeader } from '../policy/compiled.js'

/**
 * Fields whose meaning a server may find under an underscore spelling: CGI-style backends read
 * `Transfer_Encoding` as `Transfer-Encoding` (both become HTTP_TRANSFER_ENCODING). Such spellings of
 * the framing, routing and hop-by-hop fields are dropped, as nginx drops every underscore name by
 * default; other names with underscores (`X_Api_Key`) pass.
 */
const UNDERSCORE_SENSITIVE = new Set([...HOP_BY_HOP, 'content-length', 'host', 'via', 'forwarded', 'x-forwarded-for'])

/**
 * Headers a `Connection` field may not remove: `Connection: content-length` would strip the body's
 * length and leave the body on the upstream connection as a second, undecided request.
 */
const NOT_REMOVABLE = new Set(['content-length', 'host'])

export const VIA = '1.1 portcullis'

/** The names a `Connection` field lists (lower-case), except the framing ones it may not remove. */
function connectionNamed(values: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const v of values)
    for (const token of v.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '' && !NOT_REMOVABLE.has(name)) out.add(name)
    }
  return out
}

/**
 * A flat `[name, value, …]` list without hop-by-hop fields (the fixed list and every name the
 * Connection field lists), without the names in `drop` (lower-case), and without the proxy's own
 * `X-Portcullis-*`: only the proxy says what it decided (an allowed origin answering
 * `X-Portcullis-Decision: denied_no_rule` would tell an agent "policy, do not retry").
 */
export function endToEnd(raw: readonly string[], drop: ReadonlySet<string> = NOTHING): string[] {
  const connection: string[] = []
  for (let i = 0; i < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() === 'connection') connection.push(raw[i + 1] as string)
  // Nearly every message says only `keep-alive` or `close`, which name nothing beyond the fixed list.
  const named = connection.length === 0 || onlyHopByHop(connection) ? null : connectionNamed(connection)
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    if (HOP_BY_HOP.has(name) || drop.has(name) || named?.has(name) === true || name.startsWith(OWN_PREFIX)) continue
    if (name.includes('_') && UNDERSCORE_SENSITIVE.has(name.replaceAll('_', '-'))) continue
    out.push(raw[i] as string, raw[i + 1] as string)
  }
  return out
}

const NOTHING: ReadonlySet<string> = new Set()
const OWN_PREFIX = 'x-portcullis-'
const HOST_AND_VIA: ReadonlySet<string> = new Set(['host', 'via'])
const VIA_ONLY: ReadonlySet<string> = new Set(['via'])
const VIA_AND_LENGTH: ReadonlySet<string> = new Set(['via', 'content-length'])

/** A Connection field that is one of the usual single tokens, which are hop-by-hop already. */
function onlyHopByHop(values: readonly string[]): boolean {
  if (values.length !== 1) return false
  const v = (values[0] as string).toLowerCase()
  return v === 'keep-alive' || v === 'close'
}

const kContinueSent = Symbol('portcullis.continueSent')
const kKeepAliveIfContinued = Symbol('portcullis.keepAliveIfContinued')
type ContinueResponse = ServerResponse & { [kContinueSent]?: boolean; [kKeepAliveIfContinued]?: boolean }

/**
 * A request with `Expect: 100-continue` (server.ts expectContinue): its connection closes after the
 * answer unless 100 Continue goes out. A refused client may or may not send the body it announced, so
 * nothing after it can be read as the next request; a client told to continue sends its body, framed
 * as announced, and the next request follows it.
 */
export function closeUnlessContinued(res: ContinueResponse): void {
  res[kKeepAliveIfContinued] = res.shouldKeepAlive
  res.shouldKeepAlive = false
}

/**
 * `Expect: 100-continue` is answered by the proxy, once the request is allowed (server.ts
 * expectContinue holds node's automatic answer back): before its body is read for inspection, or
 * before it is forwarded. Once per request.
 */
export function sendContinue(req: IncomingMessage, res: ContinueResponse): void {
  // An HTTP/1.0 client is sent no 1xx, and its 100-continue is ignored (RFC 9110 §10.1.1, §15.2).
  if (res[kContinueSent] || req.httpVersion !== '1.1' || !/^100-continue$/i.test(req.headers.expect ?? '')) return
  res[kContinueSent] = true
  res.writeContinue()
  if (res[kKeepAliveIfContinued] === true) res.shouldKeepAlive = true
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
  /**
   * The body, held elsewhere (a push spilled to disk), replayed as a stream framed as the client framed
   * it; `bytes` of it were already read from the client (the byte count of its close record).
   */
  readonly replay?: { readonly stream: Readable; readonly bytes: number }
}

export interface InjectedHeader {
  readonly name: string
  readonly value: string
  /**
   * What is masked if the upstream sends it back: the secret, and for HTTP Basic the base64 of
   * `user:secret` the proxy sent (an origin echoing the header would otherwise hand the sandbox a
   * credential anyone can decode).
   */
  readonly secrets: readonly string[]
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
    // A value with a line break would end its header line and start another: as good as unset.
    if (secret === undefined || secret === '' || LINE_BREAKING.test(secret)) return { missing: h.env }
    if (h.basicUser === undefined) {
      // A function, not the string: `$$`, `$&` and `$'` in a replacement string are patterns, and a secret
      // holding them went upstream altered, so the masker, which looks for the real value, let echoes pass.
      out.push({ name: h.name.toLowerCase(), value: h.format.replaceAll('{}', () => secret), secrets: [secret] })
      continue
    }
    const credential = Buffer.from(`${h.basicUser}:${secret}`).toString('base64')
    out.push({ name: h.name.toLowerCase(), value: `Basic ${credential}`, secrets: [secret, credential] })
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
  /**
   * One whole answer, read into memory up to `maxBytes` (package metadata the proxy filters before the
   * client sees it). Same pools, TLS verification and timeouts as forward(). Never rejects.
   */
  fetchWhole(target: ForwardTarget, request: WholeRequest, maxBytes: number): Promise<WholeAnswer>
  /** The roots upstream TLS is verified against (system plus upstream.ca_file), for other upstream legs (WebSocket). */
  readonly tlsContext: SecureContext
  close(): void
}

/** A GET or HEAD the proxy sends on its own account (its headers end to end; Host and Via are added). */
export interface WholeRequest {
  readonly method: 'GET' | 'HEAD'
  readonly headers: readonly string[]
}

export type WholeAnswer =
  | {
      readonly kind: 'answer'
      readonly status: number
      /** The answer's end-to-end fields, flat `[name, value, …]`, names lower-case. */
      readonly headers: readonly string[]
      readonly body: Buffer
    }
  | { readonly kind: 'too_large' }
  | { readonly kind: 'failed'; readonly failure: UpstreamFailureKind }

export interface ForwarderOptions {
  readonly connectTimeoutMs: number
  readonly responseHeaderTimeoutMs: number
  readonly idleTimeoutMs: number
  /** Roots for verifying upstream TLS: system roots plus upstream.ca_file. */
  readonly ca: readonly string[]
  /** Where a refused upstream certificate is reported (PC_UPSTREAM_TLS_VERIFY). */
  readonly log: Logger
}

/**
 * mapSocketError, and for a certificate the upstream leg refused, one PC_UPSTREAM_TLS_VERIFY line with
 * node's code and message (the names the certificate holds, OpenSSL's reason): the agent's answer says
 * only `tls_verify`, and the operator needs to know why.
 */
export function upstreamFailureOf(
  log: Logger,
  target: { readonly host: string; readonly port: number },
  err: unknown,
): UpstreamFailureKind {
  const kind = mapSocketError(err)
  if (kind === 'tls_verify') {
    const e = err as { code?: unknown; message?: unknown }
    log.warn(
      {
        code: 'PC_UPSTREAM_TLS_VERIFY',
        host: target.host,
        port: target.port,
        verify_code: String(e.code),
        verify_error: String(e.message),
      },
      "the upstream server's certificate failed verification; the request was refused (502 tls_verify)",
    )
  }
  return kind
}

/** Upstream pools kept at once (one per address, port and server name); the least recently used go. */
const MAX_POOLS = 1024
/** Connections one pool may open to its upstream. */
const CONNECTIONS_PER_POOL = 256
/** Largest answer head taken from an upstream: Squid's reply_header_max_size (long CSPs, many Set-Cookie). */
export const MAX_ANSWER_HEAD_BYTES = 64 * 1024

/** Body bytes written to the client but not yet taken before reading upstream pauses. */
const BATCH_BYTES = 256 * 1024
/** Reads of an answer's body this size or more are copied into its ring, of RING_BYTES: what may wait to be written (BATCH_BYTES) and more. */
const RING_FROM_BYTES = 4 * 1024
/** Reads of an answer's body smaller than this are gathered for the turn into a buffer of SMALL_GATHER_BYTES. */
const SMALL_READ_BYTES = 1024
const SMALL_GATHER_BYTES = 16 * 1024
const RING_BYTES = 2 * BATCH_BYTES

/**
 * The upstream leg, on the proxy's own HTTP/1.1 client (net/http1-client.ts): one keep-alive pool per
 * checked address, port and (for TLS) server name. The proxy frames each hop itself: the client's
 * hop-by-hop fields never travel, a body keeps a length or goes chunked whatever the method (a chunked
 * GET body is never left on the connection as a second request). Upstream TLS is always verified
 * against the system roots plus upstream.ca_file with the host as SNI and certificate name.
 * Timeouts: connect_timeout_ms to connect; idle_timeout_ms of silence before the answer and between
 * its chunks; once the answer has started, its head within response_header_timeout_ms.
 */
export function createForwarder(opts: ForwarderOptions): Forwarder {
  // One SecureContext for the roots: a `ca` list would be parsed again for every connection.
  const secureContext = createUpstreamSecureContext(opts.ca)
  const client = createHttp1Client({
    connectTimeoutMs: opts.connectTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    responseHeadTimeoutMs: opts.responseHeaderTimeoutMs,
    maxHeadBytes: MAX_ANSWER_HEAD_BYTES,
    secureContext,
    connectionsPerPool: CONNECTIONS_PER_POOL,
    maxPools: MAX_POOLS,
  })
  return {
    tlsContext: secureContext,
    forward(req, res, target, onFailure) {
      sendContinue(req, res)
      const injected = target.inject ?? []
      // Set by the proxy: Host (the target's), Via (appended), injected credentials; a body the proxy
      // read goes with the length the client writes for it.
      const drop =
        injected.length === 0 && target.body === undefined
          ? HOST_AND_VIA
          : new Set([
              ...HOST_AND_VIA,
              ...injected.map((h) => h.name),
              // Identity, and the whole answer: a Range read of an echo would bring the credential out
              // in pieces, each too short for the masker to know (Request-Range is Range to Apache and Jetty).
              ...(injected.length > 0 ? ['accept-encoding', 'range', 'if-range', 'request-range'] : []),
              ...(target.body !== undefined ? ['content-length'] : []),
            ])
      const headers = endToEnd(req.rawHeaders, drop)
      if (req.method === 'TRACE' || req.method === 'OPTIONS') decrementMaxForwards(headers)
      addProxyFields(headers, target, req.headers.via)
      // Masking an injected secret needs the answer as sent: ask for it uncompressed.
      if (injected.length > 0) headers.push('accept-encoding', 'identity')
      const body = bodyOf(req, target)
      // While the client's body is still coming (forwarded as it arrives, or the rest of a held push
      // replayed), a client that stops sending is closed after idle_timeout_ms; once it is in, the wait is
      // the upstream's. The guard starts when the body starts to be read: a request waiting for a
      // connection of a full pool reads nothing, and its client, done or held back, is not silent.
      const streamed = body !== null && !Buffer.isBuffer(body)
      const relay = relayAnswer(res, injected, onFailure, (err) => upstreamFailureOf(opts.log, target, err))
      relay.exchange = client.dispatch(
        originOf(target),
        {
          method: req.method ?? 'GET',
          path: req.method === 'OPTIONS' && asteriskForm(req.url) ? '*' : target.requestTarget,
          headers,
          body,
          // A streamed body keeps the Content-Length the client gave (still in `headers`), else goes chunked.
          framing: req.headers['content-length'] !== undefined ? 'length' : 'chunked',
          onBodyStart: streamed ? () => guardBody(req, opts.idleTimeoutMs) : undefined,
        },
        relay,
      )
    },
    fetchWhole(target, request, maxBytes) {
      const headers = [...request.headers]
      addProxyFields(headers, target, undefined)
      return new Promise<WholeAnswer>((resolve) => {
        const chunks: Buffer[] = []
        let size = 0
        let status = 0
        let flat: string[] = []
        const exchange = client.dispatch(
          originOf(target),
          { method: request.method, path: target.requestTarget, headers, body: null },
          {
            onHead(s, h) {
              status = s
              flat = h
              return true
            },
            onData(chunk) {
              size += chunk.length
              if (size > maxBytes) {
                exchange.abort()
                resolve({ kind: 'too_large' })
                return false
              }
              // A view of the upstream read buffer, reused by the next read.
              chunks.push(Buffer.from(chunk))
              return true
            },
            onComplete() {
              const lower: string[] = []
              for (let i = 0; i < flat.length; i += 2)
                lower.push((flat[i] as string).toLowerCase(), flat[i + 1] as string)
              resolve({ kind: 'answer', status, headers: endToEnd(lower), body: Buffer.concat(chunks, size) })
            },
            onError(err) {
              resolve({ kind: 'failed', failure: upstreamFailureOf(opts.log, target, err) })
            },
          },
        )
      })
    },
    close() {
      client.close()
    },
  }
}

/** The client's body guard, from when its body starts to be read until it has all arrived. */
function guardBody(req: IncomingMessage, idleMs: number): void {
  if (!req.complete) req.once('end', guardIdle(req, idleMs))
}

function originOf(t: ForwardTarget): Origin {
  return { address: t.address, port: t.port, tls: t.tls, servername: t.tls && !isIp(t.host) ? t.host : '' }
}

/** Host (the target's), Via (appended to the client's), and each injected credential. */
/**
 * RFC 9112 §3.2.4: an OPTIONS about the server as a whole (`OPTIONS *`, or absolute-form with an empty
 * path and no query) goes to the origin as `*`, not as a request for `/` or `/*`.
 */
function asteriskForm(url: string | undefined): boolean {
  return url === '*' || (url !== undefined && /^https?:\/\/[^/?#]+$/i.test(url))
}

/** An answer with a body and no Content-Length among its end-to-end fields. */
function lengthUnstated(status: number, method: string | undefined, headers: readonly string[]): boolean {
  if (status === 204 || status === 304 || method === 'HEAD') return false
  for (let i = 0; i < headers.length; i += 2)
    if ((headers[i] as string).toLowerCase() === 'content-length') return false
  return true
}

/**
 * RFC 9110 §7.6.2: an intermediary forwarding TRACE or OPTIONS decrements Max-Forwards (at 0 it
 * answers itself: maxForwardsAnswer). A value that is not a number is left as it came.
 */
function decrementMaxForwards(headers: string[]): void {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() !== 'max-forwards') continue
    const value = (headers[i + 1] as string).trim()
    if (/^\d{1,9}$/.test(value) && Number(value) > 0) headers[i + 1] = String(Number(value) - 1)
  }
}

/**
 * A TRACE or OPTIONS with `Max-Forwards: 0` is for the proxy to answer (RFC 9110 §7.6.2), as Squid
 * does: OPTIONS with what it forwards, TRACE with the request it received, less the fields that carry
 * credentials. Undefined for any other request (nearly all, decided by the method alone).
 */
export function maxForwardsAnswer(
  req: IncomingMessage,
): { readonly status: number; readonly headers: readonly string[]; readonly body: Buffer } | undefined {
  const method = req.method
  if (method !== 'TRACE' && method !== 'OPTIONS') return undefined
  const maxForwards = req.headers['max-forwards']
  if (typeof maxForwards !== 'string' || maxForwards.trim() !== '0') return undefined
  if (method === 'OPTIONS')
    return { status: 200, headers: ['allow', ALLOWED_METHODS, 'content-length', '0'], body: EMPTY }
  let echo = `${method} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string
    if (!CREDENTIAL_FIELDS.has(name.toLowerCase())) echo += `${name}: ${req.rawHeaders[i + 1] as string}\r\n`
  }
  const body = Buffer.from(`${echo}\r\n`, 'latin1')
  return { status: 200, headers: ['content-type', 'message/http', 'content-length', String(body.length)], body }
}

const EMPTY = Buffer.alloc(0)
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE'
/** Not echoed by TRACE: the credentials a request carries (a page's script must not read them back). */
const CREDENTIAL_FIELDS = new Set(['proxy-authorization', 'authorization', 'cookie'])

export function addProxyFields(headers: string[], target: ForwardTarget, clientVia: string | undefined): void {
  const defaultPort = target.tls ? 443 : 80
  headers.push(
    'host',
    target.port !== defaultPort
      ? formatAuthority(target.host, target.port)
      : target.host.includes(':')
        ? `[${target.host}]`
        : target.host,
  )
  headers.push('via', clientVia ? `${clientVia}, ${VIA}` : VIA)
  for (const h of target.inject ?? []) headers.push(h.name, h.value)
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':')
}

/**
 * What goes upstream as the body: a body read by the proxy (a buffer, sent with its length), a replayed
 * one or the request stream (with the length the client gave, else chunked), or none for a request
 * that announced none. Content-Length stays in `headers` only where the body is the client's as it came.
 */
function bodyOf(req: IncomingMessage, target: ForwardTarget): OutgoingRequest['body'] {
  if (target.body !== undefined) return target.body
  if (target.replay !== undefined) return target.replay.stream
  const length = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && (length === undefined || length === '0')) {
    // Nothing to send: let the (empty) request end, so its 'end' marks it complete.
    req.resume()
    return null
  }
  return req
}

const kCut = Symbol('portcullis.answerCut')
type CutResponse = ServerResponse & { [kCut]?: UpstreamFailureKind }

function markCut(res: ServerResponse, kind: UpstreamFailureKind): void {
  ;(res as CutResponse)[kCut] = kind
}

/** How the upstream cut this answer short after its head went out (relayAnswer), if it did. */
export function answerCut(res: ServerResponse): UpstreamFailureKind | undefined {
  return (res as CutResponse)[kCut]
}

/** Does an answer head (flat name/value list) name a content coding other than identity? */
export function encodedBody(flat: readonly string[]): boolean {
  for (let i = 0; i < flat.length; i += 2) {
    if ((flat[i] as string).toLowerCase() !== 'content-encoding') continue
    const codings = (flat[i + 1] as string).split(',').map((c) => c.trim().toLowerCase())
    if (codings.some((c) => c !== '' && c !== 'identity')) return true
  }
  return false
}

/**
 * The answer, written to the client as it comes: hop-by-hop fields stripped (and those its Connection
 * field names), Via appended, Connection for the client's own hop; an injected secret masked in header
 * values and body; backpressure both ways; a client that leaves aborts the upstream request.
 */
function relayAnswer(
  res: ServerResponse,
  injected: readonly InjectedHeader[],
  onFailure: (kind: UpstreamFailureKind) => void,
  failureOf: (err: unknown) => UpstreamFailureKind,
): ResponseHandler & { exchange: Exchange | null } {
  let done = false
  const secrets = injected.flatMap((h) => h.secrets)
  const masker = injected.length > 0 ? createSecretMasker(secrets.map((s) => Buffer.from(s))) : null
  const onClientGone = (): void => {
    if (!done) relay.exchange?.abort()
  }
  res.once('close', onClientGone)
  // A body is written in batches: the client socket is corked for the rest of the event-loop turn, so the
  // chunks of one upstream read (and of reads in the same turn) leave in one writev, and through TLS
  // as one write of several records; the answer's end leaves with them. Reading pauses once BATCH_BYTES
  // wait to be written.
  let paused = false
  let corked: Socket | null = null
  const uncork = (): void => {
    writeSmall()
    corked?.uncork()
    corked = null
  }
  // `chunk` is a view of the upstream read buffer, and the write completes later: what is written is a
  // copy. Small ones come from node's Buffer pool; a body's larger reads take turns in one ring per
  // answer (copy-ring.ts), given back as their writes complete, and a fresh copy when it is full.
  let ring: CopyRing | null = null
  const writeCopy = (chunk: Buffer): boolean => {
    if (masker !== null) return res.write(masker.push(Buffer.from(chunk)))
    if (chunk.length < RING_FROM_BYTES) return res.write(Buffer.from(chunk))
    ring ??= new CopyRing(RING_BYTES)
    const copy = ring.copy(chunk)
    return copy === null ? res.write(Buffer.from(chunk)) : res.write(copy, ring.release)
  }
  // Small reads of the body (an upstream's small chunks, as the parser gives them one by one) are
  // gathered for the turn and written as one: a write per chunk was a chunk frame and a stream write
  // each, 6.6 s of proxy CPU per MB of 1-byte chunks (test/integration/tiny-chunks.test.ts).
  // The first is held as a copy of its own (most answers have one); a second starts a gathering buffer.
  let small: Buffer | null = null
  let smallBytes = 0
  const writeSmall = (): void => {
    if (small === null) return
    const held = small.subarray(0, smallBytes)
    small = null
    smallBytes = 0
    if (!res.destroyed) res.write(masker !== null ? masker.push(held) : held)
  }
  const gather = (chunk: Buffer): void => {
    if (small !== null && smallBytes + chunk.length > SMALL_GATHER_BYTES) writeSmall()
    if (small === null) {
      small = Buffer.from(chunk)
      smallBytes = chunk.length
      return
    }
    if (small.length < SMALL_GATHER_BYTES) {
      const gathering = Buffer.allocUnsafeSlow(SMALL_GATHER_BYTES)
      small.copy(gathering, 0, 0, smallBytes)
      small = gathering
    }
    chunk.copy(small, smallBytes)
    smallBytes += chunk.length
  }
  const endAnswer = (): void => {
    uncork()
    if (masker === null) res.end()
    else res.end(masker.flush())
  }
  let heldHead: { readonly status: number; readonly headers: string[] } | null = null
  const writeHeldHead = (): void => {
    if (heldHead === null) return
    const { status, headers } = heldHead
    heldHead = null
    if (!res.destroyed) res.writeHead(status, headers)
  }
  res.on('drain', () => {
    if (!paused) return
    paused = false
    relay.exchange?.resume()
  })
  const relay: ResponseHandler & { exchange: Exchange | null } = {
    exchange: null,
    onInformational(status, flat) {
      // RFC 9110 §15.2: a proxy passes 1xx on, to clients that can take them (HTTP/1.1). 100 Continue is
      // the proxy's own (sent once the request is allowed); an answer whose fields are masked keeps its
      // 1xx back (they could echo the injected credential).
      if (res.req.httpVersion !== '1.1' || res.headersSent || masker !== null) return
      if (status === 102) return void res.writeProcessing()
      if (status !== 103) return
      const fields = endToEnd(flat, VIA_ONLY)
      const hints: Record<string, string> = Object.create(null) as Record<string, string>
      for (let i = 0; i < fields.length; i += 2) {
        const name = (fields[i] as string).toLowerCase()
        hints[name] =
          hints[name] === undefined ? (fields[i + 1] as string) : `${hints[name]}, ${fields[i + 1] as string}`
      }
      try {
        res.writeEarlyHints(hints)
      } catch {
        // A Link value node will not write: the hints are only hints.
      }
    },
    onHead(status, flat) {
      // A 204 has no content (RFC 9110 §8.6): a length the upstream gave it is not passed on.
      const headers = endToEnd(flat, status === 204 ? VIA_AND_LENGTH : VIA_ONLY)
      let via = ''
      for (let i = 0; i < flat.length; i += 2)
        if ((flat[i] as string).toLowerCase() === 'via')
          via = via === '' ? (flat[i + 1] as string) : `${via}, ${flat[i + 1] as string}`
      headers.push('via', via !== '' ? `${via}, ${VIA}` : VIA)
      // An HTTP/1.0 client cannot be sent chunks: a body of no stated length ends with the connection.
      if (res.shouldKeepAlive && res.req.httpVersion === '1.0' && lengthUnstated(status, res.req.method, headers))
        res.shouldKeepAlive = false
      // The client's hop: close after this answer if the client asked to (Connection: close, HTTP/1.0).
      headers.push('connection', res.shouldKeepAlive ? 'keep-alive' : 'close')
      if (masker !== null) {
        // The request asked for identity: a compressed body would carry an echoed credential past the
        // masker unseen, so such an answer is refused rather than passed on (one without a body is no risk).
        if (encodedBody(flat) && status !== 204 && status !== 304 && res.req.method !== 'HEAD') {
          done = true
          res.removeListener('close', onClientGone)
          if (!res.destroyed) onFailure('encoded_answer')
          return false
        }
        maskFields(headers, secrets)
      }
      if (res.destroyed) return false
      // Written once the read that brought it is parsed: a framing error in the same read (a bad chunk
      // right after the head) still gets the client a 502 that says so, not a head and a reset.
      heldHead = { status, headers }
      queueMicrotask(writeHeldHead)
      return true
    },
    onData(chunk) {
      if (res.destroyed) return false
      writeHeldHead()
      const socket = res.socket
      if (corked === null && socket !== null) {
        corked = socket
        socket.cork()
        atTurnEnd(uncork)
      }
      if (chunk.length < SMALL_READ_BYTES && corked !== null) gather(chunk)
      else {
        writeSmall()
        writeCopy(chunk)
      }
      if (res.writableLength + smallBytes < BATCH_BYTES) return true
      paused = true
      return false
    },
    onComplete() {
      done = true
      writeHeldHead()
      res.removeListener('close', onClientGone)
      // With the turn's other answers (turn-batch.ts): the client is woken once for all of them.
      atTurnEnd(endAnswer)
    },
    onError(err, headSeen) {
      done = true
      uncork()
      res.removeListener('close', onClientGone)
      if (res.destroyed) return
      const headWritten = headSeen && heldHead === null
      heldHead = null
      if (!headWritten && !res.headersSent) onFailure(failureOf(err))
      else {
        // The client has a head and part of a body: its connection closes, and the close record says why.
        markCut(res, failureOf(err))
        res.destroy()
      }
    },
  }
  return relay
}
