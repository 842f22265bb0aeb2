import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { armHeadDeadline, attachConnState, destroyEmitter, headsEnded, headStarted } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import { handleConnect } from './connect.js'
import { handleHttpRequest } from './request-flow.js'
import { countReadUntilAnswered } from './pass.js'
import { closeUnlessContinued } from './forward.js'
import { relayUpgrade } from './websocket.js'
import { respondBadRequest, respondDenial, respondUnacceptable } from './respond.js'
import { internalError } from './decision-point.js'
import type { BadRequestListener } from './bad-requests.js'
import { bodyAnnounced, lingerAfterAnswer } from './linger.js'

const PROXY_CHANNEL = Object.freeze({ kind: 'proxy' as const })

/** Header size limit: a request head beyond this is answered 431 by the parser. */
export const MAX_HEADER_BYTES = 16 * 1024

/**
 * The proxy listener. Node's parser (strict mode, never insecureHTTPParser)
 * refuses most malformed heads itself; clientError turns those into a
 * 400/408/431 and a closed connection. Every handler fails closed: an
 * unexpected throw closes that connection and logs PC_ERR_INTERNAL.
 */
export function createProxyServer(deps: ProxyDeps): Server {
  const upstream = deps.config().upstream
  const server = createServer({
    headersTimeout: upstream.headerTimeoutMs,
    // A whole-request deadline would cut long uploads (git push); idle and header timeouts bound them instead.
    requestTimeout: 0,
    keepAliveTimeout: upstream.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, upstream.headerTimeoutMs),
    maxHeaderSize: MAX_HEADER_BYTES,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
    // A missing Host is refused by request-flow.ts, with the proxy's explanation, not node's bare 400.
    requireHostHeader: false,
  })
  answerHalfClosedClients(server)
  // A first head that never comes (a slow-header attack) is counted, by whichever deadline sees it first.
  const firstHeadTimedOut = (socket: Socket): void => {
    deps.gate.noteHeaderTimeout()
    answerHeaderTimeout(socket)
  }
  server.on('connection', (socket: Socket) => {
    const state = attachConnState(socket)
    socket.on('error', destroyEmitter)
    if (!deps.gate.accept(socket, state.srcIp)) return void socket.destroy()
    armHeadDeadline(socket, upstream.headerTimeoutMs, firstHeadTimedOut)
  })
  // Past listen.max_connections node closes new connections at once ('drop'); counted for the metrics.
  server.on('drop', () => {
    deps.gate.noteDropped()
    deps.descriptors.noteFull(server.maxConnections)
  })
  // An accept that fails must not end the process (an 'error' without a listener would): out of
  // descriptors is one log line per episode, and node keeps accepting once some are free.
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EMFILE' || err.code === 'ENFILE') deps.descriptors.note('accept')
    else if (server.listening) deps.log.error({ code: 'PC_ERR_ACCEPT', err }, 'accepting a connection failed')
  })
  const failPlain = (err: unknown, req: IncomingMessage, res: ServerResponse): void => {
    deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'plain HTTP handler failed; connection closed')
    if (!res.headersSent)
      respondDenial(
        res,
        internalError,
        {
          requestId: '-',
          agent: null,
          method: req.method ?? '-',
          host: '-',
          port: 0,
          scheme: 'http',
          path: null,
          query: '',
          wantsJson: false,
        },
        true,
      )
    else res.destroy()
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    countReadUntilAnswered(res)
    awaitNextHead(req, res, upstream.idleTimeoutMs)
    inTurn(req, res, () => handleHttpRequest(deps, req, res, PROXY_CHANNEL, true, failPlain))
  }
  server.on('request', onRequest)
  server.on('checkContinue', expectContinue(onRequest))
  server.on('checkExpectation', refuseExpectation)
  server.on('connect', (req, socket: Socket, head: Buffer) => {
    headsEnded(socket)
    afterEarlierAnswer(socket, () =>
      handleConnect(deps, req, socket, head).catch((err: unknown) => {
        deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'CONNECT handler failed; connection closed')
        socket.destroy()
      }),
    )
  })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    headsEnded(socket)
    afterEarlierAnswer(socket, () => {
      if (declineH2cUpgrade(req, socket, onRequest)) return
      relayUpgrade(deps, req, socket, head, PROXY_CHANNEL, null).catch((err: unknown) => {
        deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'WebSocket upgrade failed; connection closed')
        socket.destroy()
      })
    })
  })
  const onClientError = answerAndNoteClientError(deps, 'proxy')
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.writable) deps.gate.noteHeaderTimeout()
    onClientError(err, socket)
  })
  return server
}

/**
 * A listener's 'clientError': answered (answerClientError), and a head refused as malformed noted
 * (PC_BAD_REQUEST). A head deadline (408) is not: the connection refusals count those.
 */
export function answerAndNoteClientError(
  deps: Pick<ProxyDeps, 'badRequests'>,
  listener: BadRequestListener,
): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err, socket) => {
    const answer = answerClientError(err, socket)
    if (answer !== null && answer.status !== 408) deps.badRequests.note(socket, listener, answer.status, answer.detail)
  }
}

/** What answerClientError wrote, when it wrote an answer. */
export interface ClientErrorAnswer {
  readonly status: 400 | 408 | 431
  readonly detail: string
}

/**
 * A head node's parser refused, or one that did not arrive within header_timeout_ms: 400/408/431 and a
 * closed connection. Returns the answer written, or null when none was (the client gone, or the error
 * is in what followed a request already answered).
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): ClientErrorAnswer | null {
  const code = err.code ?? ''
  if (code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return null
  }
  // One answer per request: bytes after a request read whole whose answer is on its way (an HTTP/1.0
  // request followed by more), or a bad body after a request already refused from its head, let that
  // answer go out and then close; a 400 now would cut it off or answer twice. An error inside the
  // body of a request not yet answered (bad chunking) is that request's, and refused as usual.
  // (Bytes after a `Connection: close` request are such an error, HPE_CLOSED_CONNECTION: every request
  // read before them, queued behind the answer in flight, is answered first.)
  const s = socket as QueueSocket
  const inFlight = s._httpMessage
  if (inFlight && (inFlight.req.complete || inFlight.headersSent)) {
    // Once: the parser has stopped, and what else the client sends is not read (each chunk would be another error).
    if (s[kBroken] === true) return null
    s[kBroken] = true
    s.pause()
    // A queued request whose own body broke is never sent (inTurn); when its turn comes it closes the connection.
    const queued = s[kQueued]
    const last = queued !== undefined && !queued.destroyed ? queued : inFlight
    if (last.writableFinished) socket.destroy()
    else last.once('close', () => socket.destroy())
    return null
  }
  const answer: ClientErrorAnswer =
    code === 'HPE_HEADER_OVERFLOW'
      ? { status: 431, detail: 'headers_too_large' }
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? { status: 408, detail: 'header_timeout' }
        : { status: 400, detail: code.startsWith('HPE_') ? code.slice(4).toLowerCase() : 'malformed' }
  respondBadRequest(socket, answer.status, answer.detail)
  return answer
}

/**
 * `Expect: 100-continue`: node would answer 100 at once, before any decision, and the client would
 * upload its body to a request about to be refused. Instead the request is decided first and the
 * forwarder sends 100 Continue only when it is allowed; without it, the connection closes after the
 * answer (forward.ts closeUnlessContinued).
 */
export function expectContinue(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    closeUnlessContinued(res)
    handle(req, res)
  }
}

/**
 * An `Expect` other than 100-continue: 417 with the proxy's explanation, and the connection closes
 * (node's own 417 kept the connection open with the body unread, and a 408 followed on it).
 */
export function refuseExpectation(req: IncomingMessage, res: ServerResponse): void {
  inTurn(req, res, () => {
    req.resume()
    respondUnacceptable(res, 417, `Expect: ${String(req.headers.expect).slice(0, 100)}`)
  })
}

/**
 * Pipelined requests are handled one at a time, in order: node parses and emits every request a
 * client sent at once before the first is answered. A request whose predecessor closes the
 * connection (a denial, a 400, a refused Expect, Connection: close) is never decided, recorded or
 * sent upstream: the client was told the connection ends there, and will send it again.
 */
export function inTurn(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
  const socket = req.socket as QueueSocket
  const current = socket._httpMessage
  // An answer that closes the connection may be written whole before node parses what followed it
  // in the same read (a 400 for a smuggling shape): node then hands the next request this socket as
  // if it were free, but the connection is ending, and that request must not go out (on a kept
  // upstream connection, in this very turn).
  if (socket.writableEnded || socket.destroyed) return void res.destroy()
  if (!current || current === res) return handle()
  // Each waits for the one just before it, not for the answer being written: else every request queued
  // behind it ran at once when it closed, even past one that closes the connection.
  const queued = socket[kQueued]
  const earlier = queued !== undefined && !queued.writableFinished && !queued.destroyed ? queued : current
  socket[kQueued] = res
  const depth = (socket[kDepth] ?? 0) + 1
  socket[kDepth] = depth
  // Again at each request parsed past the bound: node resumes a paused socket when its output drains.
  if (depth >= MAX_QUEUED_REQUESTS) stopReading(socket)
  earlier.once('close', () => {
    if (socket[kQueued] === res) socket[kQueued] = undefined
    const left = (socket[kDepth] ?? 1) - 1
    socket[kDepth] = left
    if (left === RESUME_QUEUED_REQUESTS) readAgain(socket)
    // A `Connection: close` answer ends the socket (node's destroySoon) before this runs; after a
    // parse error (answerClientError), a request whose body never arrived whole is not sent.
    if (
      !earlier.writableFinished ||
      !earlier.shouldKeepAlive ||
      socket.writableEnded ||
      socket.destroyed ||
      (socket[kBroken] === true && !req.complete)
    )
      return void res.destroy()
    // Its head arrived long ago; the deadline the earlier response armed for a next head is not this one's.
    headStarted(socket)
    handle()
  })
}

/**
 * Requests a client may have queued behind the answer in flight before its connection stops being
 * read (Squid reads one ahead). Unbounded, one agent that pipelined 200,000 requests behind a slow
 * one and read nothing held 600 MB to 1 GB of parsed requests, and the proxy spent 16–55 s of CPU
 * unwinding them when it left, serving nobody. Reading resumes once the queue is down to half.
 * (What node has read before the pause, at most one read of 64 KiB, is still parsed.) A head the
 * pause cut in two keeps its header_timeout_ms: if the queue takes longer than that to drain, the
 * connection closes after the answers in flight, and the client sends the rest again.
 */
export const MAX_QUEUED_REQUESTS = 32
const RESUME_QUEUED_REQUESTS = MAX_QUEUED_REQUESTS / 2

const kQueued = Symbol('portcullis.queuedResponse')
const kDepth = Symbol('portcullis.queuedRequests')
const kBroken = Symbol('portcullis.parseFailed')
const kQueueFull = Symbol('portcullis.queueFull')
/**
 * The last request queued behind the answer in flight (inTurn), while one is, and how many are;
 * whether the parser has failed; whether reading stopped for a full queue. `_paused` and `parser`
 * are node's own (_http_server.js): with `_paused` set it pauses the parser after the read at hand
 * and does not resume the socket on 'drain' while it stays set.
 */
type QueueSocket = Socket & {
  _httpMessage?: ServerResponse | null
  _paused?: boolean
  parser?: { resume(): void } | null
  [kQueued]?: ServerResponse | undefined
  [kDepth]?: number
  [kBroken]?: boolean
  [kQueueFull]?: boolean
}

function stopReading(socket: QueueSocket): void {
  socket[kQueueFull] = true
  socket._paused = true
  socket.pause()
}

function readAgain(socket: QueueSocket): void {
  if (socket[kQueueFull] !== true || socket.destroyed) return
  socket[kQueueFull] = false
  socket._paused = false
  socket.parser?.resume()
  socket.resume()
}

/**
 * `Upgrade: h2c` (curl --http2 on an http:// URL): the proxy speaks HTTP/1.1 to clients, so it
 * declines the upgrade, as RFC 9113 §3.2 lets a server and as Squid does: Upgrade and HTTP2-Settings
 * are hop-by-hop (dropped by the forwarder) and the request is answered over HTTP/1.1. Node's parser
 * has stopped at the head of an upgrade, so the request is handed to `handle` with a response made
 * here, and the connection closes after it (lingering: bytes the client sent after the head are not
 * read as requests). Only a request without a body: one with a body has it past the parser's stop,
 * and is refused as other upgrades are (relayUpgrade). Returns false when this is not such a request.
 */
export function declineH2cUpgrade(
  req: IncomingMessage,
  socket: Socket,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): boolean {
  if ((req.headers.upgrade ?? '').trim().toLowerCase() !== 'h2c' || bodyAnnounced(req)) return false
  const res = new ServerResponse(req)
  res.shouldKeepAlive = false
  res.assignSocket(socket)
  res.once('finish', () => {
    res.detachSocket(socket)
    lingerAfterAnswer(socket)
    socket.destroySoon()
  })
  handle(req, res)
  return true
}

/**
 * A CONNECT or an Upgrade pipelined behind a request whose answer is still on its way: node hands it
 * over at once, and its 200/101 (or refusal) would go out before that answer, which the client would
 * then read inside the tunnel, or as the answer to the wrong request. It is handled once that answer
 * is out (the client's further bytes wait, paused); when that answer closes the connection, never:
 * the client was told the connection ends there.
 */
export function afterEarlierAnswer(socket: Socket, handle: () => void): void {
  const current = (socket as QueueSocket)._httpMessage
  if (!current) return handle()
  // After the last request queued, not only the one being answered (inTurn).
  const queued = (socket as QueueSocket)[kQueued]
  const earlier = queued !== undefined && !queued.writableFinished && !queued.destroyed ? queued : current
  socket.pause()
  earlier.once('close', () => {
    if (!earlier.writableFinished || !earlier.shouldKeepAlive || socket.destroyed || socket.writableEnded)
      return void socket.destroy()
    handle()
  })
}

/**
 * A request head is here: its deadline is met. Once the response is done, a kept-alive connection
 * has idle_timeout_ms for the next head (blank lines do not count), then it is closed.
 */
export function awaitNextHead(req: IncomingMessage, res: ServerResponse, idleTimeoutMs: number): void {
  const socket = req.socket
  headStarted(socket)
  res.once('finish', () => armHeadDeadline(socket, idleTimeoutMs, destroySocket))
}

/** A head deadline passed (armHeadDeadline): 408 and a closed connection. */
export function answerHeaderTimeout(socket: Socket): void {
  respondBadRequest(socket, 408, 'header_timeout')
}

/** A deadline passed where no answer is owed (between requests, before a TLS handshake): closed. */
export function destroySocket(socket: Socket): void {
  socket.destroy()
}

/**
 * A client that sends its request and then shuts down its sending side (a script's shutdown(SHUT_WR),
 * `nc -N`) still reads the answer: node's default ends the connection at the client's FIN, after the
 * request has gone upstream, so the client got nothing for a request that took effect. The answer in
 * flight becomes the connection's last; the idle and header timeouts still bound a half-closed
 * client. (`httpAllowHalfOpen`: a property of node's http.Server since its start, read by its
 * socketOnEnd, though not in its types.) Every server that reads agents' requests sets it.
 */
export function answerHalfClosedClients(server: Server): void {
  ;(server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
  server.on('connection', (socket: Socket) => socket.on('end', endMidAnswer))
}

/**
 * A client's FIN once its answer has begun is a client gone (killed, a cancelled fetch): the
 * connection closes, which aborts the upstream exchange at once, not after idle_timeout_ms of a quiet
 * origin (a long poll, a stream that pauses). Before the answer's head it is a client that finished
 * sending (shutdown(SHUT_WR)) and waits for it, as above. Squid's half_closed_clients off does the same.
 */
function endMidAnswer(this: Socket): void {
  const res = (this as QueueSocket)._httpMessage
  if (res && res.headersSent && !res.writableFinished) this.destroy()
}
