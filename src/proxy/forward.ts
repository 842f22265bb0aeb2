import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { createSecureContext, type SecureContext } from 'node:tls'
import { LRUCache } from 'lru-cache'
import { Pool, type Dispatcher } from 'undici'
import { formatAuthority } from '../net/host.js'
import { mapSocketError, type UpstreamFailureKind } from '../net/dial.js'
import { createSecretMasker, maskText } from './response-redact.js'
import { guardIdle } from './read-body.js'
import type { InjectHeader } from '../policy/compiled.js'

/**
 * RFC 9110 §7.6.1 hop-by-hop fields, plus the proxy's own credentials, which never travel upstream,
 * `Expect` (the proxy answers 100-continue itself, once the request is allowed), and the framing fields
 * the proxy writes itself on each hop (`transfer-encoding`; `content-length` stays when it is the body's).
 */
const HOP_BY_HOP = new Set([
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
])

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
 * Connection field lists) and without the names in `drop` (lower-case).
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
    if (HOP_BY_HOP.has(name) || drop.has(name) || named?.has(name) === true) continue
    out.push(raw[i] as string, raw[i + 1] as string)
  }
  return out
}

const NOTHING: ReadonlySet<string> = new Set()
const HOST_AND_VIA: ReadonlySet<string> = new Set(['host', 'via'])
const VIA_ONLY: ReadonlySet<string> = new Set(['via'])

/** A Connection field that is one of the usual single tokens, which are hop-by-hop already. */
function onlyHopByHop(values: readonly string[]): boolean {
  if (values.length !== 1) return false
  const v = (values[0] as string).toLowerCase()
  return v === 'keep-alive' || v === 'close'
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
}

/** Upstream pools kept at once (one per address, port and server name); the least recently used go. */
const MAX_POOLS = 1024
/** Connections one pool may open to its upstream. */
const CONNECTIONS_PER_POOL = 256

/** Body bytes written to the client but not yet taken before reading upstream pauses. */
const BATCH_BYTES = 256 * 1024

function timeoutError(): Error {
  return Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })
}

/**
 * The upstream leg, on undici: one keep-alive pool per checked address, port and (for TLS) server
 * name, dispatched with the raw header lists (no ClientRequest or IncomingMessage per request: a
 * quarter of the CPU node:http's client spent here). The proxy frames each hop itself: the client's
 * hop-by-hop fields never travel, a body keeps a length or goes chunked whatever the method (a chunked
 * GET body is never left on the connection as a second request). Upstream TLS is always verified
 * against the system roots plus upstream.ca_file with the host as SNI and certificate name.
 * Timeouts: connect_timeout_ms to connect; idle_timeout_ms of silence before the answer and between
 * its chunks; once the answer has started, its head within response_header_timeout_ms.
 */
export function createForwarder(opts: ForwarderOptions): Forwarder {
  // One SecureContext for the roots: a `ca` list would be parsed again for every connection.
  const secureContext: SecureContext = createSecureContext({ ca: [...opts.ca] })
  const pools = new LRUCache<string, Pool>({
    max: MAX_POOLS,
    dispose: (pool) => void pool.close().catch(() => undefined),
  })
  const poolFor = (t: ForwardTarget): Pool => {
    const key = `${t.tls ? 'https' : 'http'}\0${t.address}\0${t.port}\0${t.tls ? t.host : ''}`
    let pool = pools.get(key)
    if (pool === undefined) {
      const origin = `${t.tls ? 'https' : 'http'}://${formatAuthority(t.address, t.port)}`
      pool = new Pool(origin, {
        connections: CONNECTIONS_PER_POOL,
        pipelining: 1,
        keepAliveTimeout: Math.min(opts.idleTimeoutMs, 60_000),
        headersTimeout: opts.idleTimeoutMs,
        bodyTimeout: opts.idleTimeoutMs,
        connectTimeout: opts.connectTimeoutMs,
        connect: t.tls ? { servername: isIp(t.host) ? '' : t.host, secureContext, rejectUnauthorized: true } : {},
      })
      pools.set(key, pool)
    }
    return pool
  }
  return {
    tlsContext: secureContext,
    forward(req, res, target, onFailure) {
      sendContinue(req, res)
      const injected = target.inject ?? []
      // Set by the proxy: Host (the target's), Via (appended), injected credentials; a body the proxy
      // read goes with the length undici gives it.
      const drop =
        injected.length === 0 && target.body === undefined
          ? HOST_AND_VIA
          : new Set([
              ...HOST_AND_VIA,
              ...injected.map((h) => h.name),
              ...(injected.length > 0 ? ['accept-encoding'] : []),
              ...(target.body !== undefined ? ['content-length'] : []),
            ])
      const headers = endToEnd(req.rawHeaders, drop)
      addProxyFields(headers, target, req.headers.via)
      // Masking an injected secret needs the answer as sent: ask for it uncompressed.
      if (injected.length > 0) headers.push('accept-encoding', 'identity')
      // While the client's body is still coming (forwarded as it arrives), a client that stops sending is
      // closed after idle_timeout_ms; once it is in, the wait is the upstream's.
      if (!req.complete) req.once('end', guardIdle(req, opts.idleTimeoutMs))
      const handler = createResponseHandler(res, injected, opts.responseHeaderTimeoutMs, onFailure)
      const method = req.method ?? 'GET'
      poolFor(target).dispatch({ path: target.requestTarget, method, headers, body: bodyOf(req, target) }, handler)
    },
    async fetchWhole(target, request, maxBytes) {
      const headers = [...request.headers]
      addProxyFields(headers, target, undefined)
      try {
        const answer = await poolFor(target).request({ path: target.requestTarget, method: request.method, headers })
        const chunks: Buffer[] = []
        let size = 0
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          size += chunk.length
          if (size > maxBytes) {
            answer.body.destroy()
            return { kind: 'too_large' }
          }
          chunks.push(chunk)
        }
        const flat: string[] = []
        for (const [name, value] of Object.entries(answer.headers))
          for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) flat.push(name, v)
        return { kind: 'answer', status: answer.statusCode, headers: endToEnd(flat), body: Buffer.concat(chunks, size) }
      } catch (err) {
        return { kind: 'failed', failure: mapSocketError(err as Error) }
      }
    },
    close() {
      for (const pool of pools.values()) void pool.destroy().catch(() => undefined)
      pools.clear()
    },
  }
}

/** Host (the target's), Via (appended to the client's), and each injected credential. */
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
 * What goes upstream as the body, and its framing: a body read by the proxy (as a buffer: undici sends
 * its length), a replayed one (with the length the client gave, else chunked), the request stream (the
 * same), or none for a request that announced none. Content-Length stays in `headers` only where the
 * body is the client's as it came.
 */
function bodyOf(req: IncomingMessage, target: ForwardTarget): Dispatcher.DispatchOptions['body'] {
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

interface LegacyHandler extends Dispatcher.DispatchHandler {
  onConnect(abort: (err?: Error) => void): void
  onResponseStarted(): void
  onHeaders(status: number, headers: Buffer[], resume: () => void, statusText: string): boolean
  onData(chunk: Buffer): boolean
  onComplete(trailers: unknown): void
  onError(err: Error): void
}

/**
 * The answer, written to the client as it comes: hop-by-hop fields stripped (and those its Connection
 * field names), Via appended, Connection for the client's own hop; an injected secret masked in header
 * values and body; backpressure both ways; a client that leaves aborts the upstream request.
 */
function createResponseHandler(
  res: ServerResponse,
  injected: readonly InjectedHeader[],
  headDeadlineMs: number,
  onFailure: (kind: UpstreamFailureKind) => void,
): LegacyHandler {
  let abort: ((err?: Error) => void) | null = null
  let headTimer: NodeJS.Timeout | undefined
  let done = false
  let resume: (() => void) | null = null
  const masker = injected.length > 0 ? createSecretMasker(injected.map((h) => Buffer.from(h.secret))) : null
  const secrets = injected.map((h) => h.secret)
  const onClientGone = (): void => {
    if (!done) abort?.(Object.assign(new Error('client closed'), { code: 'UND_ERR_ABORTED' }))
  }
  res.once('close', onClientGone)
  // A body is written in batches: the client socket is corked for the rest of the event-loop turn, so the
  // chunks of one upstream read (and of reads in the same turn) leave in one writev, and through TLS
  // as one write of several records. Reading pauses once BATCH_BYTES wait to be written.
  let paused = false
  let corked: Socket | null = null
  const uncork = (): void => {
    corked?.uncork()
    corked = null
  }
  res.on('drain', () => {
    if (!paused) return
    paused = false
    resume?.()
  })
  return {
    onConnect(a) {
      abort = a
    },
    onResponseStarted() {
      headTimer = setTimeout(() => abort?.(timeoutError()), headDeadlineMs)
    },
    onHeaders(status, raw, resumeFn) {
      clearTimeout(headTimer)
      // 1xx answers (103 Early Hints) are not relayed: the final answer follows.
      if (status < 200) return true
      resume = resumeFn
      const flat: string[] = []
      for (let i = 0; i < raw.length; i += 2)
        flat.push((raw[i] as Buffer).toString('latin1'), (raw[i + 1] as Buffer).toString('latin1'))
      const headers = endToEnd(flat, VIA_ONLY)
      const via = flat.filter((_, i) => i % 2 === 1 && (flat[i - 1] as string).toLowerCase() === 'via')
      headers.push('via', via.length > 0 ? `${via.join(', ')}, ${VIA}` : VIA)
      // The client's hop: close after this answer if the client asked to (Connection: close, HTTP/1.0).
      headers.push('connection', res.shouldKeepAlive ? 'keep-alive' : 'close')
      if (masker !== null)
        for (let i = 1; i < headers.length; i += 2) headers[i] = maskText(headers[i] as string, secrets)
      if (res.destroyed) return false
      res.writeHead(status, headers)
      return true
    },
    onData(chunk) {
      if (res.destroyed) return false
      const socket = res.socket
      if (corked === null && socket !== null) {
        corked = socket
        socket.cork()
        setImmediate(uncork)
      }
      if (res.write(masker === null ? chunk : masker.push(chunk)) || res.writableLength < BATCH_BYTES) return true
      paused = true
      return false
    },
    onComplete() {
      done = true
      uncork()
      res.removeListener('close', onClientGone)
      if (masker === null) res.end()
      else res.end(masker.flush())
    },
    onError(err) {
      done = true
      uncork()
      clearTimeout(headTimer)
      res.removeListener('close', onClientGone)
      if ((err as { code?: string }).code === 'UND_ERR_ABORTED' && res.destroyed) return
      if (!res.headersSent) onFailure(mapSocketError(err))
      else res.destroy()
    },
  }
}
