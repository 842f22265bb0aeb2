import { connect as netConnect, type OnReadOpts, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions, type SecureContext } from 'node:tls'
import type { Readable } from 'node:stream'
import { LRUCache } from 'lru-cache'
import { ResponseParser, UpstreamClosedError, type ResponseEvents } from './http1-response.js'
import { atTurnEnd, corkUntilTurnEnd } from './turn-batch.js'
import { checkUpstreamIdentity } from './upstream-tls.js'

/**
 * The proxy's own HTTP/1.1 client for the upstream leg: keep-alive pools per checked address, port and
 * (for TLS) server name, one request at a time per connection, the request head written as one string
 * and the answer parsed by http1-response.ts. It replaces undici here because a forwarded request
 * spent ~10 µs of its CPU in undici's request objects, queues and parser glue, and because undici
 * defers every request on a reused socket to the next turn of the event loop.
 *
 * Wire guarantees: the request is framed here (a Buffer body with its length, a streamed body with
 * the length the caller vouches for or chunked), no header value or target may carry CR, LF or NUL
 * (a split request), the answer is parsed strictly, and a connection is reused only after an answer
 * that was framed, complete, said nothing of closing and had nothing after it, and only when the
 * request body was sent whole.
 * Timeouts: connect (TLS handshake included) within connectTimeoutMs; idleTimeoutMs of silence while
 * a request is out (or idle in the pool: the connection is closed); an answer head that has begun
 * must be complete within responseHeadTimeoutMs.
 */

export interface Origin {
  readonly address: string
  readonly port: number
  readonly tls: boolean
  /** SNI and certificate name; '' for an IP literal (the certificate must then name the address). */
  readonly servername: string
}

export interface OutgoingRequest {
  readonly method: string
  /** Origin-form target. */
  readonly path: string
  /** End-to-end fields, flat `[name, value, …]`; no framing field unless `framing` is 'length'. */
  readonly headers: readonly string[]
  readonly body: null | Buffer | Readable
  /** A streamed body: 'length' when `headers` carries its Content-Length, else sent chunked. */
  readonly framing?: 'length' | 'chunked'
  /**
   * A streamed body starts to be read: the request has its connection. Not called while it waits for
   * one (a full pool), when nothing reads the body and a silent client is not at fault.
   */
  readonly onBodyStart?: () => void
}

export interface ResponseHandler {
  /** The final answer's head (names as sent, latin1); false abandons the exchange. */
  onHead(status: number, headers: string[]): boolean
  /** An informational answer (102, 103…) before the final one; the handler may pass it on. */
  onInformational?(status: number, headers: string[]): void
  /**
   * A piece of the body; false pauses reading until the exchange is resumed. `chunk` is a view of the
   * connection's read buffer, valid only during the call: a handler that keeps it (to write it later
   * or gather a body) keeps a copy.
   */
  onData(chunk: Buffer): boolean
  onComplete(): void
  /** The exchange failed; `headSeen` says whether onHead was called. */
  onError(err: Error, headSeen: boolean): void
}

export interface Exchange {
  /** Stop: the upstream connection is closed, and the handler hears nothing more. */
  abort(): void
  /** Read the answer again after onData returned false. */
  resume(): void
}

export interface ClientOptions {
  readonly connectTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly responseHeadTimeoutMs: number
  readonly maxHeadBytes: number
  readonly secureContext: SecureContext
  /** Connections one pool may open; further requests wait for one. */
  readonly connectionsPerPool: number
  /** Pools kept at once; the least recently used are closed. */
  readonly maxPools: number
}

export class HeaderValueError extends Error {
  readonly code = 'HEADER_NOT_SENDABLE'
}

/** CR, LF or NUL: what would let a value end its line and start another. */
export const LINE_BREAKING = /[\r\n\0]/
/** Bytes one read of an upstream connection takes: a TLS record's worth (what node decrypts at a time). */
const READ_BYTES = 16 * 1024
/** Methods a reset connection may send again (RFC 9110 §9.2.1 safe methods). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export interface Http1Client {
  dispatch(origin: Origin, request: OutgoingRequest, handler: ResponseHandler): Exchange
  close(): void
}

export function createHttp1Client(opts: ClientOptions): Http1Client {
  // A pool pushed out of the LRU still serves what it was given (its requests in flight and those
  // waiting for one of its connections) and then closes; until then it is kept here, so close()
  // reaches its connections too.
  const retired = new Set<Pool>()
  const pools = new LRUCache<string, Pool>({
    max: opts.maxPools,
    dispose: (pool) => {
      if (pool.retire(() => retired.delete(pool))) retired.add(pool)
    },
  })
  return {
    dispatch(origin, request, handler) {
      const key = `${origin.tls ? 's' : 'p'}\0${origin.address}\0${origin.port}\0${origin.servername}`
      let pool = pools.get(key)
      if (pool === undefined) {
        pool = new Pool(origin, opts)
        pools.set(key, pool)
      }
      const run = new Run(request, handler)
      run.lastOnConnection = bodyOfNoMeaning(request)
      const head = requestHead(request, run.lastOnConnection)
      if (head instanceof Error) {
        queueMicrotask(() => handler.onError(head, false))
        return run
      }
      run.head = head
      pool.start(run)
      return run
    },
    close() {
      for (const pool of [...pools.values(), ...retired]) pool.close()
      retired.clear()
      pools.clear()
    },
  }
}

/**
 * Methods whose body has no defined meaning (RFC 9110 §9.3): many origins answer them without reading
 * one (python's http.server, and any framework whose GET handler never touches the body), then read
 * the body as the next request on the connection. A client could hide a request no rule allows in an
 * allowed GET's body, the origin would act on it, and its answer would come back as the answer to the
 * next request sent there. Such a request goes upstream with `Connection: close`, on a connection
 * that carries nothing after it.
 */
const BODY_UNDEFINED = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'DELETE'])

function bodyOfNoMeaning(r: OutgoingRequest): boolean {
  return hasBody(r) && BODY_UNDEFINED.has(r.method)
}

function hasBody(r: OutgoingRequest): boolean {
  return r.body !== null && !(Buffer.isBuffer(r.body) && r.body.length === 0)
}

/** The request line, fields and framing, or an error for a value that would split the request. */
function requestHead(r: OutgoingRequest, lastOnConnection: boolean): string | Error {
  if (LINE_BREAKING.test(r.path) || LINE_BREAKING.test(r.method) || r.path.includes(' '))
    return new HeaderValueError('request target or method not sendable')
  let head = `${r.method} ${r.path} HTTP/1.1\r\n`
  const h = r.headers
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i] as string
    const value = h[i + 1] as string
    if (LINE_BREAKING.test(value) || LINE_BREAKING.test(name) || name.includes(':'))
      return new HeaderValueError(`header ${JSON.stringify(name)} not sendable`)
    head += `${name}: ${value}\r\n`
  }
  if (Buffer.isBuffer(r.body)) head += `content-length: ${r.body.length}\r\n`
  else if (r.body !== null && r.framing !== 'length') head += 'transfer-encoding: chunked\r\n'
  if (lastOnConnection) head += 'connection: close\r\n'
  return `${head}\r\n`
}

/** One request and its answer; what dispatch returns. */
class Run implements Exchange {
  head = ''
  conn: Connection | null = null
  headSeen = false
  /** The request body has been written whole. */
  bodySent = false
  aborted = false
  /** Sent once again on a new connection after a reused one turned out closed. */
  retried = false
  /** Sent with `Connection: close`: its connection carries nothing after it (BODY_UNDEFINED). */
  lastOnConnection = false
  constructor(
    readonly request: OutgoingRequest,
    readonly handler: ResponseHandler,
  ) {}

  abort(): void {
    if (this.aborted) return
    this.aborted = true
    this.conn?.drop(this)
  }

  resume(): void {
    this.conn?.socket.resume()
  }

  /**
   * Can go again on another connection: nothing of its body is spent, and sending it twice is harmless.
   * A reset after the request left does not say the origin did not act on it, so only idempotent
   * reads, or a request that names its own Idempotency-Key, are sent again (as Go's client does).
   */
  get replayable(): boolean {
    const request = this.request
    if (this.retried || !(request.body === null || Buffer.isBuffer(request.body))) return false
    if (SAFE_METHODS.has(request.method)) return true
    for (let i = 0; i < request.headers.length; i += 2) {
      const name = (request.headers[i] as string).toLowerCase()
      if (name === 'idempotency-key' || name === 'x-idempotency-key') return true
    }
    return false
  }
}

class Pool {
  private readonly idle: Connection[] = []
  private readonly waiting: Run[] = []
  private open = 0
  private closed = false
  /** Out of the client's LRU: no new requests; called once the last connection has closed. */
  private onRetired: (() => void) | null = null
  /** The last TLS session the origin gave, to resume on the next connection. */
  session: Buffer | undefined

  constructor(
    readonly origin: Origin,
    readonly opts: ClientOptions,
  ) {}

  start(run: Run): void {
    if (this.closed) return queueMicrotask(() => run.handler.onError(new UpstreamClosedError(false), false))
    // A connection destroyed while idle (timeout, FIN, stray bytes) leaves the list only at its 'close'.
    let conn = this.idle.pop()
    while (conn !== undefined && !conn.usable) conn = this.idle.pop()
    if (conn !== undefined) return conn.send(run)
    if (this.open < this.opts.connectionsPerPool) return this.connect().send(run)
    this.waiting.push(run)
  }

  /** A connection is free again: the next waiting request, or the idle list (or closed, once retired). */
  release(conn: Connection): void {
    if (this.closed) return conn.destroy()
    const next = this.nextWaiting()
    if (next !== undefined) return conn.send(next)
    if (this.onRetired !== null) return conn.destroy()
    this.idle.push(conn)
  }

  /** A connection closed: it no longer counts, and a waiting request may open another. */
  forget(conn: Connection): void {
    this.open--
    const i = this.idle.indexOf(conn)
    if (i >= 0) this.idle.splice(i, 1)
    const next = this.nextWaiting()
    if (next !== undefined) this.connect().send(next)
    else if (this.open === 0 && this.onRetired !== null) this.onRetired()
  }

  /**
   * Out of the client's LRU: idle connections close now, requests in flight and waiting are still
   * served, and each connection closes when it is free. True while some are still open (`done` is
   * called when the last has closed).
   */
  retire(done: () => void): boolean {
    if (this.closed) return false
    this.onRetired = done
    for (const conn of this.idle.splice(0)) conn.destroy()
    return this.open > 0
  }

  /** A fresh connection, past the limit if need be: for a request retried after a stale one. */
  retry(run: Run): void {
    run.retried = true
    this.connect().send(run)
  }

  close(): void {
    this.closed = true
    for (const conn of this.idle.splice(0)) conn.destroy()
    for (const run of this.waiting.splice(0)) run.handler.onError(new UpstreamClosedError(false), false)
  }

  private nextWaiting(): Run | undefined {
    let run = this.waiting.shift()
    while (run !== undefined && run.aborted) run = this.waiting.shift()
    return run
  }

  private connect(): Connection {
    this.open++
    const o = this.origin
    // Reads land in the connection's own buffer (READ_BYTES), reused read after read: see Connection.
    const read = Buffer.allocUnsafeSlow(READ_BYTES)
    let conn: Connection | null = null
    const onread: OnReadOpts = { buffer: read, callback: (nread) => conn?.onRead(nread) ?? false }
    const tlsOptions: TlsConnectionOptions & { readonly onread: OnReadOpts } = {
      host: o.address,
      port: o.port,
      ...(o.servername === '' ? {} : { servername: o.servername }),
      secureContext: this.opts.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: checkUpstreamIdentity,
      ALPNProtocols: ['http/1.1'],
      ...(this.session === undefined ? {} : { session: this.session }),
      // tls.connect takes `onread` as net.connect does (node ≥ 15.1; not in @types/node's ConnectionOptions).
      onread,
    }
    const socket = o.tls ? tlsConnect(tlsOptions) : netConnect({ host: o.address, port: o.port, noDelay: true, onread })
    if (o.tls) {
      socket.setNoDelay(true)
      socket.on('session', (s: Buffer) => (this.session = s))
    }
    conn = new Connection(this, socket, read)
    return conn
  }
}

class Connection implements ResponseEvents {
  readonly parser: ResponseParser
  private run: Run | null = null
  private connected = false
  private served = 0
  private headTimer: NodeJS.Timeout | undefined
  /** The answer ended inside the current read. */
  private answered = false
  private dead = false

  constructor(
    private readonly pool: Pool,
    readonly socket: Socket,
    private readonly read: Buffer,
  ) {
    this.parser = new ResponseParser(this, pool.opts.maxHeadBytes)
    socket.setTimeout(pool.opts.connectTimeoutMs)
    socket.once(pool.origin.tls ? 'secureConnect' : 'connect', () => {
      this.connected = true
      socket.setTimeout(pool.opts.idleTimeoutMs)
    })
    socket.on('end', () => this.onSocketEnd())
    socket.on('error', (err: Error) => this.fail(err))
    socket.on('timeout', () => this.fail(timeoutError(this.connected ? 'upstream idle' : 'upstream connect')))
    socket.on('close', () => this.onSocketClose())
  }

  send(run: Run): void {
    this.run = run
    run.conn = this
    this.answered = false
    this.parser.begin(run.request.method === 'HEAD')
    const body = run.request.body
    // The request leaves with the turn's other writes (turn-batch.ts): one wake-up of the origin for all.
    corkUntilTurnEnd(this.socket)
    if (body === null) {
      this.socket.write(run.head, 'latin1')
      run.bodySent = true
    } else if (Buffer.isBuffer(body)) {
      this.socket.write(run.head, 'latin1')
      this.socket.write(body)
      run.bodySent = true
    } else {
      this.socket.write(run.head, 'latin1')
      run.request.onBodyStart?.()
      this.stream(run, body, run.request.framing !== 'length')
    }
  }

  /** The caller abandoned its run (its client left): the connection goes with it, silently. */
  drop(run: Run): void {
    if (this.run !== run) return
    this.run = null
    this.destroy()
  }

  /** Not destroyed: may carry a request. */
  get usable(): boolean {
    return !this.dead
  }

  destroy(): void {
    this.dead = true
    clearTimeout(this.headTimer)
    this.socket.destroy()
  }

  informational(status: number, headers: string[]): void {
    this.run?.handler.onInformational?.(status, headers)
  }

  head(status: number, headers: string[]): void {
    const run = this.run
    if (run === null) return
    clearTimeout(this.headTimer)
    this.headTimer = undefined
    run.headSeen = true
    // An origin that refuses a request often does so without reading its body, which it may then read
    // as a request of its own (see BODY_UNDEFINED): a refused request with a body ends its connection.
    if (status >= 400 && hasBody(run.request)) run.lastOnConnection = true
    if (!run.handler.onHead(status, headers)) run.abort()
  }

  body(chunk: Buffer): void {
    const run = this.run
    if (run !== null && !run.handler.onData(chunk)) this.socket.pause()
  }

  end(): void {
    this.answered = true
  }

  private stream(run: Run, body: Readable, chunked: boolean): void {
    new BodyStream(this, run, body, this.socket, chunked).start()
  }

  /** Is this run still the one on this connection (not dropped or failed meanwhile)? */
  owns(run: Run): boolean {
    return this.run === run
  }

  /** A streamed body ended or failed: the run is this connection's still, or it was dropped meanwhile. */
  bodyDone(run: Run, err: Error | null): void {
    if (this.run !== run) return
    if (err !== null) return this.fail(err)
    run.bodySent = true
  }

  /**
   * `nread` bytes arrived in this connection's read buffer (the socket's `onread`). They are handed on
   * as a view of it, valid until this returns: the next read overwrites them, so whatever keeps them
   * (the parser's partial head, a handler's write or body) copies them. Node's own reads allocated an
   * ArrayBuffer per read (16 KiB per TLS record): 256 MiB through an intercepted tunnel allocated
   * 256 MiB of them, and V8 counted them against its heap limits and ran a full mark-compact about
   * every 30 MB (36 per bench c2 run, ~1.3 ms of CPU per MB; with this buffer: 1).
   */
  onRead(nread: number): boolean {
    this.onSocketData(this.read.subarray(0, nread))
    return true
  }

  private onSocketData(chunk: Buffer): void {
    const run = this.run
    // Bytes nobody asked for (an idle connection, or after an abandoned run): never read as an answer.
    if (run === null) return this.destroy()
    const err = this.parser.execute(chunk)
    // Abandoned while its head or body was handed over.
    if (this.run !== run) return
    if (this.answered) return this.settle(run, err === null)
    if (err !== null) return this.fail(err)
    // The head deadline runs while a head is partly here; a whole 1xx head stops it until the next begins.
    if (!this.parser.headPending) {
      clearTimeout(this.headTimer)
      this.headTimer = undefined
    } else if (this.headTimer === undefined)
      this.headTimer = setTimeout(
        () => this.fail(timeoutError('upstream answer head')),
        this.pool.opts.responseHeadTimeoutMs,
      )
  }

  /** The answer is complete: the connection is reused only when nothing about it is in doubt. */
  private settle(run: Run, clean: boolean): void {
    this.run = null
    run.conn = null
    this.served++
    if (clean && this.parser.reusable && run.bodySent && !run.lastOnConnection && !this.dead) {
      this.socket.resume()
      this.pool.release(this)
    } else this.destroy()
    run.handler.onComplete()
  }

  private onSocketEnd(): void {
    const run = this.run
    const err = this.parser.finish()
    if (run !== null && this.answered) this.settle(run, false)
    else if (run !== null) this.fail(err ?? new UpstreamClosedError(this.parser.hasStarted))
    this.destroy()
  }

  private onSocketClose(): void {
    this.dead = true
    clearTimeout(this.headTimer)
    this.pool.forget(this)
    if (this.run !== null) this.fail(new UpstreamClosedError(this.parser.hasStarted))
  }

  private fail(err: Error): void {
    const run = this.run
    this.run = null
    this.destroy()
    if (run === null || run.aborted) return
    run.conn = null
    // A kept-alive connection the origin had already closed: nothing was answered, nothing is lost
    // by sending the request again on a new one (what browsers and Go's client do).
    if (this.served > 0 && !this.parser.hasStarted && run.replayable && isStale(err)) return this.pool.retry(run)
    run.handler.onError(err, run.headSeen)
  }
}

function isStale(err: Error): boolean {
  const code = (err as { code?: string }).code
  return code === 'UPSTREAM_CLOSED' || code === 'ECONNRESET' || code === 'EPIPE'
}

function timeoutError(what: string): Error {
  return Object.assign(new Error(`${what} timeout`), { code: 'ETIMEDOUT' })
}

/**
 * A streamed request body on its way up. What the client's body gives in one event-loop turn goes up
 * as one write (one chunk when chunked), at the turn's end or once COALESCE_BYTES are held: the
 * client's parser gives a 'data' event per chunk it decodes, and a write per event made an upload of
 * 1-byte chunks cost a system call per byte (22 s of proxy CPU per MB, 20 µs a chunk, against an
 * upstream that read slowly). A client now pays for its chunks' framing in parsing only.
 */
const COALESCE_BYTES = 64 * 1024

class BodyStream {
  private readonly held: Buffer[] = []
  private heldBytes = 0
  private flushQueued = false
  private done = false

  constructor(
    private readonly conn: Connection,
    private readonly run: Run,
    private readonly body: Readable,
    private readonly socket: Socket,
    private readonly chunked: boolean,
  ) {}

  start(): void {
    this.body.on('data', this.onData)
    this.body.once('end', this.onEnd)
    this.body.once('error', this.onError)
    this.socket.on('drain', this.onDrain)
    this.socket.once('close', this.cleanup)
  }

  private readonly onData = (c: Buffer): void => {
    if (c.length === 0) return
    this.held.push(c)
    this.heldBytes += c.length
    if (this.heldBytes >= COALESCE_BYTES) this.flush()
    else if (!this.flushQueued) {
      this.flushQueued = true
      atTurnEnd(flushBody, this)
    }
  }

  /** Write what is held, framed as one chunk when chunked; pause the body while the upstream is full. */
  flush(): void {
    this.flushQueued = false
    if (this.done || this.heldBytes === 0) return
    const data = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held, this.heldBytes)
    const size = this.heldBytes
    this.held.length = 0
    this.heldBytes = 0
    const socket = this.socket
    let ok: boolean
    if (this.chunked) {
      socket.cork()
      socket.write(`${size.toString(16)}\r\n`, 'latin1')
      socket.write(data)
      ok = socket.write('\r\n', 'latin1')
      socket.uncork()
    } else ok = socket.write(data)
    if (!ok) this.body.pause()
  }

  private readonly onDrain = (): void => void this.body.resume()

  private readonly cleanup = (): void => {
    this.done = true
    this.held.length = 0
    this.heldBytes = 0
    this.body.removeListener('data', this.onData)
    this.body.removeListener('end', this.onEnd)
    this.body.removeListener('error', this.onError)
    this.socket.removeListener('drain', this.onDrain)
    this.socket.removeListener('close', this.cleanup)
  }

  private readonly onEnd = (): void => {
    this.flush()
    this.cleanup()
    if (!this.conn.owns(this.run)) return
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1')
    this.conn.bodyDone(this.run, null)
  }

  private readonly onError = (err: Error): void => {
    this.cleanup()
    this.conn.bodyDone(this.run, err)
  }
}

function flushBody(stream: BodyStream): void {
  stream.flush()
}
