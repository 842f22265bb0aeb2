import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import type { Mode } from '../policy/types.js'
import type { LeafCertCache } from '../tls/leaf-certs.js'
import type { Credential } from '../identity/authenticate.js'
import type { ProxyDeps } from './deps.js'
import { openConnection, type CloseFailure, type Trackable } from './connection.js'
import type { InFlightRequest } from './tracker.js'
import { handleHttpRequest, type ConnectChannel, type PassVerdict, type RequestChannel } from './request-flow.js'
import { respondBadRequest } from './respond.js'
import {
  afterEarlierAnswer,
  answerAndNoteClientError,
  answerHalfClosedClients,
  answerHeaderTimeout,
  awaitNextHead,
  declineH2cUpgrade,
  destroySocket,
  expectContinue,
  inTurn,
  MAX_HEADER_BYTES,
  refuseExpectation,
} from './server.js'
import { armHeadDeadline, headStarted, shareConnState } from './conn-state.js'
import { relayUpgrade } from './websocket.js'
import { refuseMalformed } from './bad-requests.js'
import { bodyStillComing, lingerAfterAnswer, onLinger } from './linger.js'

/** What the CONNECT established; every inner request is decided against it. */
export interface InterceptContext {
  readonly id: string
  readonly agent: string
  readonly host: string
  /** The name the leaf certificate is for: the host, or `*.parent` under a wildcard rule. */
  readonly leafName?: string
  readonly port: number
  /** The checked address from the CONNECT's resolution: inner requests dial only this. */
  readonly address: string
  /** The address came from an upstream.resolve pin. */
  readonly pinned: boolean
  readonly src: string
  readonly srcIp: string
  /** How the agent authenticated on the CONNECT (a reload asks again). */
  readonly credential: Credential
  readonly mode: Mode
  /** A sandbox credential's id and labels (SPEC §9), for the close record. */
  readonly sandbox?: string
  readonly labels?: Readonly<Record<string, string>>
}

export interface Interceptor {
  /** Terminate the client's TLS with a leaf for ctx.host; `hello` is the already-read ClientHello, replayed into TLS. */
  intercept(client: Socket, hello: Buffer, ctx: InterceptContext): void
  /**
   * Plain HTTP inside a CONNECT tunnel (undici's ProxyAgent tunnels http:// URLs by default): there is
   * nothing to decrypt, so the inner requests are read as they are and each is decided as a plain-HTTP
   * request on its full URL, exactly like an absolute-form one. `head` is the bytes already read.
   */
  inspectPlain(client: Socket, head: Buffer, ctx: InterceptContext): void
  /**
   * A denied CONNECT explained inside (tls.explain_denials): terminate the client's TLS with a leaf for
   * `leafName`, and answer its first request with `answer` (the denial), then close. Nothing goes upstream.
   */
  explain(
    client: Socket,
    hello: Buffer,
    leafName: string,
    answer: (req: IncomingMessage, res: ServerResponse) => void,
  ): void
  close(): void
}

const kExplain = Symbol('portcullis.explain')
type ExplainedSocket = TLSSocket & { [kExplain]?: (req: IncomingMessage, res: ServerResponse) => void }

const kIntercept = Symbol('portcullis.intercept')
interface InnerContext extends InterceptContext {
  readonly scheme: 'http' | 'https'
  /** How request-flow.ts decides its requests: against this CONNECT. */
  readonly channel: RequestChannel
  /**
   * The client connection's idle timer, held while a request is in flight: a silent upstream is
   * the upstream leg's timeout to report (504), not a reason to drop the client first.
   */
  readonly idle: IdleTimer
}

interface IdleTimer {
  hold(): void
  release(): void
  /**
   * `request` is in flight until `until` closes (its answer, or a WebSocket's socket): the connection's
   * tracking carries it, so a reload that refuses it (a narrowed path, say) cuts a long answer or a
   * WebSocket, not only the next request.
   */
  carry(request: InFlightRequest, until: { once(event: 'close', listener: () => void): unknown }): void
}
type InnerSocket = Socket & { [kIntercept]?: InnerContext }

function innerContext(ctx: InterceptContext, scheme: 'http' | 'https', idle: IdleTimer): InnerContext {
  const connect: ConnectChannel = {
    agent: ctx.agent,
    src: ctx.src,
    scheme,
    host: ctx.host,
    port: ctx.port,
    address: ctx.address,
    mode: ctx.mode,
    credential: ctx.credential,
  }
  return { ...ctx, scheme, idle, channel: { kind: 'connect', connect } }
}

/**
 * Interception: one inner HTTP server (never listening) receives decrypted
 * connections. Inner requests go through the same decideRequest as plain HTTP,
 * on their full URL; the Host must name the CONNECT host; allowed requests go
 * upstream over verified TLS to the checked address (forward.ts).
 */
export function createInterceptor(deps: ProxyDeps, leafCerts: LeafCertCache): Interceptor {
  const upstream = deps.config().upstream
  const inner: Server = createServer({
    headersTimeout: upstream.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: upstream.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, upstream.headerTimeoutMs),
    maxHeaderSize: MAX_HEADER_BYTES,
    joinDuplicateHeaders: false,
    requireHostHeader: false,
  })
  answerHalfClosedClients(inner)
  const failInner = (err: unknown, _req: IncomingMessage, res: ServerResponse): void => {
    deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'intercepted request failed; connection closed')
    res.destroy()
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    awaitNextHead(req, res, upstream.idleTimeoutMs)
    inTurn(req, res, () => {
      try {
        handleInnerRequest(deps, req, res, failInner)
      } catch (err) {
        failInner(err, req, res)
      }
    })
  }
  inner.on('request', onRequest)
  inner.on('checkContinue', expectContinue(onRequest))
  inner.on('checkExpectation', refuseExpectation)
  inner.on('clientError', answerAndNoteClientError(deps, 'tunnel'))
  inner.on('upgrade', (req: IncomingMessage, socket: InnerSocket, head: Buffer) => {
    const ctx = socket[kIntercept]
    if (ctx === undefined) return void socket.destroy()
    headStarted(socket)
    afterEarlierAnswer(socket, () => {
      if (declineH2cUpgrade(req, socket, onRequest)) return
      relayUpgrade(deps, req, socket, head, ctx.channel, ctx.idle).catch((err: unknown) => {
        deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'WebSocket upgrade failed; connection closed')
        socket.destroy()
      })
    })
  })
  // Without a listener Node drops a CONNECT with no answer; one tunnel never opens another.
  inner.on('connect', (_req: IncomingMessage, socket: InnerSocket) => {
    headStarted(socket)
    afterEarlierAnswer(socket, () => refuseMalformed(deps.badRequests, socket, 'tunnel', 405, 'connect_in_tunnel'))
  })
  // Node runs its header-timeout checks only for a server that emitted 'listening'; this one never
  // listens (connections are handed to it), so without this a client could trickle an inner request
  // head forever.
  inner.emit('listening')

  /** Idle timeout, tracking (so a reload or revocation can close it) and one close record per connection. */
  function track(client: Socket, ctx: InterceptContext, innerSocket: Socket): IdleTimer {
    const startedAt = Date.now()
    client.setTimeout(upstream.idleTimeoutMs, () => client.destroy())
    // bytes_per_day counts the client connection's bytes (TLS framing included): every second while open
    // (the sweep in app.ts), the rest at close.
    const tracked: Trackable = {
      agent: ctx.agent,
      host: ctx.host,
      port: ctx.port,
      via: 'intercept',
      address: ctx.address,
      pinned: ctx.pinned,
      srcIp: ctx.srcIp,
      credential: ctx.credential,
      close: () => client.destroy(),
    }
    const connection = openConnection(deps, {
      facts: ctx,
      credential: ctx.credential,
      startedAtMs: startedAt,
      bytes: { socket: client, upIsRead: true },
      track: tracked,
    })
    // A handshake refused (an h2-only client: gRPC, node's http2) is said in the close record, as the
    // CONNECT was recorded allowed and nothing else would show why nothing came of it.
    let refused: CloseFailure | undefined
    innerSocket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_SSL_NO_APPLICATION_PROTOCOL') refused = { client_error: 'no_application_protocol' }
    })
    client.once('close', () => connection.finish(refused))
    // What a lingering close after a refusal reads and drops is not the agent's traffic: counting stops there.
    onLinger(innerSocket, () => connection.finish())
    return {
      hold: () => client.setTimeout(0),
      release: () => client.destroyed || client.setTimeout(upstream.idleTimeoutMs),
      carry(request, until) {
        tracked.request = request
        until.once('close', () => {
          if (tracked.request === request) delete tracked.request
        })
      },
    }
  }

  /**
   * Explained denials (tls.explain_denials): a second inner server whose only answer is the denial
   * each connection carries; the connection is closed after it.
   */
  const explainer: Server = createServer({
    headersTimeout: upstream.headerTimeoutMs,
    requestTimeout: upstream.headerTimeoutMs,
    maxHeaderSize: MAX_HEADER_BYTES,
    joinDuplicateHeaders: false,
  })
  explainer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const answer = (req.socket as ExplainedSocket)[kExplain]
    res.shouldKeepAlive = false
    if (answer === undefined) return void res.destroy()
    if (bodyStillComing(req)) lingerAfterAnswer(req.socket)
    answer(req, res)
  })
  explainer.on('clientError', answerAndNoteClientError(deps, 'tunnel'))
  explainer.emit('listening')

  /** Terminate the client's TLS with a leaf for `leafName`, replaying the ClientHello already read. */
  function terminateTls(client: Socket, hello: Buffer, leafName: string): TLSSocket {
    client.unshift(hello)
    const tlsSocket = new TLSSocket(client, {
      isServer: true,
      secureContext: leafCerts.get(leafName),
      // The inner server speaks both; a client offering only http/1.0 (curl --http1.0) would otherwise
      // get a no_application_protocol alert instead of an answer. One offering only h2 gets that alert
      // (track() puts it in the close record).
      ALPNProtocols: ['http/1.1', 'http/1.0'],
    })
    tlsSocket.on('error', () => tlsSocket.destroy())
    tlsSocket.once('close', () => client.destroy())
    // Its source is the client connection's (a refusal on it is logged with it).
    shareConnState(client, tlsSocket)
    return tlsSocket
  }

  return {
    explain(client, hello, leafName, answer) {
      const tlsSocket: ExplainedSocket = terminateTls(client, hello, leafName)
      tlsSocket[kExplain] = answer
      armHeadDeadline(tlsSocket, upstream.headerTimeoutMs, destroySocket)
      client.setTimeout(upstream.headerTimeoutMs, () => client.destroy())
      tlsSocket.once('secure', () => explainer.emit('connection', tlsSocket))
    },
    intercept(client, hello, ctx) {
      const tlsSocket: InnerSocket = terminateTls(client, hello, ctx.leafName ?? ctx.host)
      // Either side gone is the connection gone (terminateTls closes the client with the TLS socket):
      // its slot, tracking and close record must not wait for a timer.
      // The client's end of the TLS stream: node's HTTP server leaves a TLS socket that got its EOF open
      // (half-closed) until a timer; nothing more can come, so close once any answer in flight is out.
      tlsSocket.once('end', () => {
        const inFlight = (tlsSocket as TLSSocket & { _httpMessage?: ServerResponse | null })._httpMessage
        if (inFlight && !inFlight.writableFinished) inFlight.once('close', () => tlsSocket.destroy())
        else tlsSocket.destroy()
      })
      // The handshake and the first inner request head together get header_timeout_ms.
      let secured = false
      armHeadDeadline(tlsSocket, upstream.headerTimeoutMs, () =>
        secured ? respondBadRequest(tlsSocket, 408, 'header_timeout') : tlsSocket.destroy(),
      )
      tlsSocket[kIntercept] = innerContext(ctx, 'https', track(client, ctx, tlsSocket))
      tlsSocket.once('secure', () => {
        secured = true
        inner.emit('connection', tlsSocket)
      })
    },
    inspectPlain(client, head, ctx) {
      const socket: InnerSocket = client
      socket[kIntercept] = innerContext(ctx, 'http', track(client, ctx, client))
      armHeadDeadline(client, upstream.headerTimeoutMs, answerHeaderTimeout)
      client.unshift(head)
      inner.emit('connection', client)
      // readClientHello left the socket paused: flowing again, the replayed head reaches the parser first.
      client.resume()
    },
    close() {
      inner.closeAllConnections()
      inner.close()
      explainer.closeAllConnections()
      explainer.close()
    },
  }
}

function handleInnerRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  fail: (err: unknown, req: IncomingMessage, res: ServerResponse) => void,
): void {
  const ctx = (req.socket as InnerSocket)[kIntercept]
  if (!ctx) return void res.destroy()
  // Once the request is in (a body the proxy reads itself is still bounded by the idle timer), the
  // wait is the upstream's: its own timeout answers 504.
  if (req.complete) ctx.idle.hold()
  else req.once('end', ctx.idle.hold)
  res.once('close', ctx.idle.release)
  handleHttpRequest(deps, req, res, ctx.channel, false, fail, carryRequest)
}

/** A request let through is in flight on its connection until its answer closes: a reload may cut it. */
function carryRequest(verdict: PassVerdict, req: IncomingMessage, res: ServerResponse): void {
  const ctx = (req.socket as InnerSocket)[kIntercept]
  ctx?.idle.carry({ method: verdict.facts.method, path: verdict.facts.path ?? '/', scheme: ctx.scheme }, res)
}
