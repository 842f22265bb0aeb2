/**
 * An HTTP/1.1 response parser for the upstream leg: incremental, strict, and pure (bytes in, events
 * out; no sockets, no clock). The proxy frames every hop itself, so what the origin sends is parsed
 * here and re-framed for the client; anything ambiguous is refused rather than guessed at:
 *  - lines end in CRLF only (a bare CR or LF is an error), no obs-fold, field names are tokens and
 *    values carry no control character but HTAB;
 *  - Content-Length is one run of digits, given once; Transfer-Encoding is exactly `chunked` (a
 *    transfer coding the proxy would have to strip from a body it passes on is refused), never with a
 *    Content-Length (the smuggling shape);
 *  - chunk sizes are hex (at most 13 digits: exact as doubles), chunk data ends in CRLF, trailers
 *    are read and dropped;
 *  - 1xx heads are skipped (101 is refused: the proxy never asks for an upgrade on this leg); 204, 304
 *    and answers to HEAD have no body; an answer with neither length nor chunking runs to the close.
 * The connection may carry another request only when the answer was framed, said nothing of closing,
 * and nothing followed it (`reusable`).
 */

export interface ResponseEvents {
  /** An informational (1xx, not 101) head before the final one, as sent. */
  informational(status: number, headers: string[]): void
  /** The final head: status and the fields as sent, flat `[name, value, …]` (latin1). */
  head(status: number, headers: string[]): void
  /** Body bytes: a view of what `execute` was given, valid during the call only. */
  body(chunk: Buffer): void
  /** The answer is complete. */
  end(): void
}

/** Why the bytes are not an answer the proxy will pass on; `code` reads like llhttp's (HPE_*). */
export class ResponseParseError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'ResponseParseError'
    this.code = code
  }
}

/** The upstream closed before its answer was complete (no head, or a body cut short). */
export class UpstreamClosedError extends Error {
  readonly code = 'UPSTREAM_CLOSED'
  /** Whether any byte of the answer had arrived. */
  readonly started: boolean
  constructor(started: boolean) {
    super(started ? 'upstream closed in the middle of its answer' : 'upstream closed without answering')
    this.name = 'UpstreamClosedError'
    this.started = started
  }
}

const enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  UntilClose,
  Done,
  Failed,
}

const CR = 0x0d
const LF = 0x0a
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?$/
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t\x20-\x7e\x80-\xff]*)$/
const DIGITS = /^[0-9]{1,15}$/
// 13 hex digits (2^52) at most: chunk sizes are counted in doubles, exact up to 2^53.
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,13})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?$/
/** Longest chunk-size line (with extensions) and trailer section the parser holds. */
const MAX_CHUNK_LINE = 4096
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
const HTTP_PREFIX = Buffer.from('HTTP/', 'latin1')

/**
 * Why the start of a head (no blank line yet) can never be a valid one, or null: it does not begin
 * with `HTTP/`, or a line ends in a bare LF (a head in bare LFs never reaches CRLF CRLF, and the
 * client would wait out the response-header deadline for a 502 that can be given at once).
 */
function unfinishableHead(head: Buffer): { readonly code: string; readonly message: string } | null {
  const statusLine = { code: 'HPE_INVALID_CONSTANT', message: 'not an HTTP/1.x status line' }
  const n = Math.min(head.length, HTTP_PREFIX.length)
  if (head.compare(HTTP_PREFIX, 0, n, 0, n) !== 0) return statusLine
  let lineEnds = 0
  for (let lf = head.indexOf(LF); lf >= 0; lf = head.indexOf(LF, lf + 1)) {
    // The same codes as the whole head would get, however the bytes were split into reads.
    if (lf === 0 || head[lf - 1] !== CR)
      return lineEnds === 0 ? statusLine : { code: 'HPE_INVALID_HEADER_TOKEN', message: 'malformed header field' }
    lineEnds++
  }
  return null
}

export class ResponseParser {
  private state = State.Idle
  private noBody = false
  /** Head bytes (or a chunk line) that arrived without their end. */
  private pending: Buffer | null = null
  private line = ''
  private remaining = 0
  /** Bytes of the chunk's closing CRLF already seen. */
  private crlfSeen = 0
  private keepAlive = true
  private started = false
  private trailerBytes = 0
  private error: ResponseParseError | null = null

  constructor(
    private readonly events: ResponseEvents,
    private readonly maxHeadBytes: number,
  ) {}

  /** Expect the answer to a request; `noBody` for HEAD. */
  begin(noBody: boolean): void {
    this.state = State.Head
    this.noBody = noBody
    this.pending = null
    this.line = ''
    this.keepAlive = true
    this.started = false
    this.trailerBytes = 0
  }

  /** Some byte of this answer has arrived. */
  get hasStarted(): boolean {
    return this.started
  }

  /** Part of a head arrived without its end (not after a whole 1xx head: the final one has not begun). */
  get headPending(): boolean {
    return this.state === State.Head && this.pending !== null
  }

  /** The answer is complete and the connection may carry another request. */
  get reusable(): boolean {
    return this.state === State.Done && this.keepAlive
  }

  /** Parse what arrived; an error ends this parser's use (the connection must close). */
  execute(data: Buffer): ResponseParseError | null {
    if (data.length > 0) this.started = true
    let at = 0
    while (at < data.length) {
      switch (this.state) {
        case State.Head:
          at = this.readHead(data, at)
          break
        case State.Length:
          at = this.readBody(data, at)
          if (this.remaining === 0) this.complete()
          break
        case State.ChunkSize:
          at = this.readChunkSize(data, at)
          break
        case State.ChunkData:
          at = this.readBody(data, at)
          if (this.remaining === 0) {
            this.state = State.ChunkEnd
            this.crlfSeen = 0
          }
          break
        case State.ChunkEnd: {
          const want = this.crlfSeen === 0 ? CR : LF
          if (data[at] !== want) return this.fail('HPE_STRICT', 'chunk data not followed by CRLF')
          at++
          if (++this.crlfSeen === 2) this.state = State.ChunkSize
          break
        }
        case State.Trailers:
          at = this.readTrailers(data, at)
          break
        case State.UntilClose:
          this.events.body(at === 0 ? data : data.subarray(at))
          at = data.length
          break
        case State.Done:
        case State.Idle:
          // Nothing may follow an answer (or precede a request): it would be read as the next one.
          return this.fail('HPE_DATA_AFTER_RESPONSE', 'bytes after the end of the answer')
        case State.Failed:
          return this.error ?? this.fail('HPE_STRICT', 'parser used after an error')
      }
      if ((this.state as State) === State.Failed) return this.error
    }
    return null
  }

  /** Up to `remaining` body bytes from `at` go to the events (the buffer itself when it is all body); the new position. */
  private readBody(data: Buffer, at: number): number {
    const n = Math.min(this.remaining, data.length - at)
    this.remaining -= n
    this.events.body(at === 0 && n === data.length ? data : data.subarray(at, at + n))
    return at + n
  }

  /** The upstream closed its side: completes an answer that runs to the close, else an error. */
  finish(): Error | null {
    if (this.state === State.UntilClose) {
      this.keepAlive = false
      this.complete()
      return null
    }
    if (this.state === State.Done || this.state === State.Idle) return null
    if (this.state === State.Failed) return this.error
    const err = new UpstreamClosedError(this.started)
    this.state = State.Failed
    return err
  }

  private fail(code: string, message: string): ResponseParseError {
    this.state = State.Failed
    this.error = new ResponseParseError(code, message)
    return this.error
  }

  private complete(): void {
    this.state = State.Done
    this.events.end()
  }

  /** Head bytes from `at`: the whole head when its blank line is here, else held. Returns where reading stopped. */
  private readHead(data: Buffer, at: number): number {
    let buf = data
    let from = at
    let searchFrom = at
    if (this.pending !== null) {
      // The blank line may straddle the two reads.
      searchFrom = Math.max(0, this.pending.length - 3)
      buf = Buffer.concat([this.pending, at === 0 ? data : data.subarray(at)])
      from = 0
    }
    const end = buf.indexOf(HEAD_END, searchFrom)
    if (end < 0 || end - from > this.maxHeadBytes) {
      if (end >= 0 || buf.length - from > this.maxHeadBytes) {
        this.fail('HPE_HEADER_OVERFLOW', 'answer head too large')
        return data.length
      }
      // Kept across reads: a copy (`data` is a view of the connection's read buffer, reused by the next read).
      this.pending = Buffer.from(buf.subarray(from))
      // A head that cannot become one fails now, not when the upstream closes or a deadline passes.
      const bad = unfinishableHead(this.pending)
      if (bad !== null) this.fail(bad.code, bad.message)
      return data.length
    }
    const consumedOfData = this.pending === null ? end + 4 : end + 4 - this.pending.length + at
    this.pending = null
    this.parseHead(buf.toString('latin1', from, end))
    return consumedOfData
  }

  private parseHead(text: string): void {
    // Lines by indexOf and fields by test() + slice: exec() match arrays and a split() array per head
    // were ~7 % of the plain-HTTP path's allocation (heap sampling), and so of its scavenges.
    let eol = text.indexOf('\r\n')
    if (eol < 0) eol = text.length
    const status = STATUS_LINE.exec(text.slice(0, eol))
    if (status === null) return void this.fail('HPE_INVALID_CONSTANT', 'not an HTTP/1.x status line')
    const minor = status[1]
    const code = Number(status[2])
    const headers: string[] = []
    let length: number | null = null
    let chunked = false
    let close = minor === '0'
    while (eol < text.length) {
      const from = eol + 2
      eol = text.indexOf('\r\n', from)
      if (eol < 0) eol = text.length
      const line = text.slice(from, eol)
      if (!FIELD_LINE.test(line)) return void this.fail('HPE_INVALID_HEADER_TOKEN', 'malformed header field')
      // A token holds no ':', so the first one ends the name.
      const colon = line.indexOf(':')
      const name = line.slice(0, colon)
      const value = trimOws(line, colon + 1)
      headers.push(name, value)
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        if (length !== null || !DIGITS.test(value))
          return void this.fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'Content-Length repeated or not a number')
        length = Number(value)
      } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
        if (chunked || value.toLowerCase() !== 'chunked')
          return void this.fail('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding other than one chunked')
        chunked = true
      } else if (name.length === 10 && name.toLowerCase() === 'connection') {
        if (hasToken(value, 'close')) close = true
      }
    }
    if (chunked && (length !== null || minor === '0'))
      return void this.fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'Transfer-Encoding with Content-Length, or in HTTP/1.0')
    if (code < 200) {
      // 100, 102, 103: the final answer follows (a 101 would switch protocols nobody asked for).
      if (code === 101) return void this.fail('HPE_UNEXPECTED_UPGRADE', 'unrequested protocol switch')
      return this.events.informational(code, headers)
    }
    if (close) this.keepAlive = false
    this.events.head(code, headers)
    if (this.state !== State.Head) return
    if (this.noBody || code === 204 || code === 304) return this.complete()
    if (chunked) {
      this.state = State.ChunkSize
      this.line = ''
    } else if (length !== null) {
      this.remaining = length
      if (length === 0) this.complete()
      else this.state = State.Length
    } else {
      this.keepAlive = false
      this.state = State.UntilClose
    }
  }

  /** One CRLF-ended line from `at` into this.line; returns where it ended, or -1 when it did not end here. */
  private readLine(data: Buffer, at: number, max: number): number {
    const lf = data.indexOf(LF, at)
    const stop = lf < 0 ? data.length : lf
    if (this.line.length + (stop - at) > max) {
      this.fail('HPE_HEADER_OVERFLOW', 'chunk line or trailers too long')
      return data.length
    }
    this.line += data.toString('latin1', at, stop)
    return lf < 0 ? -1 : lf + 1
  }

  /** The CRLF-ended line in this.line, without its end; null (and failed) for a bare LF or a stray CR. */
  private takeLine(): string | null {
    const line = this.line
    this.line = ''
    if (!line.endsWith('\r') || line.indexOf('\r') !== line.length - 1) {
      this.fail('HPE_STRICT', 'line not ended by CRLF')
      return null
    }
    return line.slice(0, -1)
  }

  private readChunkSize(data: Buffer, at: number): number {
    const next = this.readLine(data, at, MAX_CHUNK_LINE)
    if (next < 0 || this.state === State.Failed) return data.length
    const line = this.takeLine()
    if (line === null) return data.length
    const m = CHUNK_SIZE_LINE.exec(line)
    if (m === null) {
      this.fail('HPE_INVALID_CHUNK_SIZE', 'malformed chunk size')
      return data.length
    }
    const size = parseInt(m[1] as string, 16)
    if (size === 0) this.state = State.Trailers
    else {
      this.remaining = size
      this.state = State.ChunkData
    }
    return next
  }

  private readTrailers(data: Buffer, at: number): number {
    let from = at
    for (;;) {
      const next = this.readLine(data, from, MAX_CHUNK_LINE - this.trailerBytes)
      if (this.state === State.Failed) return data.length
      if (next < 0) return data.length
      this.trailerBytes += next - from
      from = next
      const line = this.takeLine()
      if (line === null) return data.length
      if (line === '') {
        this.trailerBytes = 0
        this.complete()
        return from
      }
      if (!FIELD_LINE.test(line)) {
        this.fail('HPE_INVALID_HEADER_TOKEN', 'malformed trailer field')
        return data.length
      }
    }
  }
}

/** A field value without its optional whitespace (SP and HTAB only: 0xA0 is obs-text, kept). */
function trimOws(v: string, start = 0): string {
  let s = start
  let e = v.length
  while (s < e && (v.charCodeAt(s) === 0x20 || v.charCodeAt(s) === 0x09)) s++
  while (e > s && (v.charCodeAt(e - 1) === 0x20 || v.charCodeAt(e - 1) === 0x09)) e--
  return s === 0 && e === v.length ? v : v.slice(s, e)
}

/** Does a comma-separated field value list this token (case-insensitive)? */
function hasToken(value: string, token: string): boolean {
  // Nearly every Connection field is one token (`keep-alive`, `close`): no list to split.
  if (!value.includes(',')) return trimOws(value).toLowerCase() === token
  for (const part of value.split(',')) if (trimOws(part).toLowerCase() === token) return true
  return false
}
