/**
 * Read SNI and ALPN from the first bytes of a TLS connection. PURE.
 *
 * Called repeatedly on a growing buffer of the client's first bytes after
 * `200 Connection established`. It reassembles a ClientHello split across
 * several handshake records (RFC 8446 §5.1 allows it, and it is a known SNI
 * filter evasion), is bounded (the caller never buffers more than
 * CLIENT_HELLO_MAX_BYTES: past that the answer is `not_tls`), and every length
 * is checked before use, so malformed input yields `not_tls`, never a throw.
 */

export type ClientHelloResult =
  | { readonly kind: 'need_more' }
  | { readonly kind: 'not_tls' }
  | { readonly kind: 'hello'; readonly sni: string | null; readonly alpn: readonly string[] }

/** Wire bytes (record headers included) after which we stop waiting for a hello. */
export const CLIENT_HELLO_MAX_BYTES = 64 * 1024

const RECORD_HEADER = 5
const CONTENT_HANDSHAKE = 0x16
const HANDSHAKE_CLIENT_HELLO = 0x01
// RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes.
const MAX_RECORD_PAYLOAD = 16384
const EXT_SERVER_NAME = 0x0000
const EXT_ALPN = 0x0010
const NAME_TYPE_HOST = 0x00

const NEED_MORE: ClientHelloResult = Object.freeze({ kind: 'need_more' })
const NOT_TLS: ClientHelloResult = Object.freeze({ kind: 'not_tls' })

export function parseClientHello(buf: Buffer): ClientHelloResult {
  try {
    const body = reassemble(buf)
    if (body === 'need_more') return buf.length >= CLIENT_HELLO_MAX_BYTES ? NOT_TLS : NEED_MORE
    if (body === null) return NOT_TLS
    return parseHelloBody(body) ?? NOT_TLS
  } catch {
    // Unreachable by design (every read is bounds-checked); kept so the
    // contract "never throws" holds even if a check is ever missed.
    return NOT_TLS
  }
}

/** Concatenate handshake record payloads until the whole ClientHello body is present. */
function reassemble(buf: Buffer): Buffer | null | 'need_more' {
  const chunks: Buffer[] = []
  let have = 0
  let off = 0
  let msgLen = -1
  for (;;) {
    if (buf.length - off < RECORD_HEADER) return prefixLooksLikeTls(buf, off) ? 'need_more' : null
    if (buf[off] !== CONTENT_HANDSHAKE || buf[off + 1] !== 0x03) return null
    const len = buf.readUInt16BE(off + 3)
    if (len === 0 || len > MAX_RECORD_PAYLOAD) return null
    if (buf.length - off - RECORD_HEADER < len) return 'need_more'
    chunks.push(buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len))
    have += len
    off += RECORD_HEADER + len
    // Concatenate only when the header is first complete and once at the end,
    // so a hello cut into thousands of 1-byte records costs linear time.
    if (msgLen < 0 && have >= 4) {
      const head = Buffer.concat(chunks, have)
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return null
      msgLen = head.readUIntBE(1, 3)
      if (msgLen + 4 > CLIENT_HELLO_MAX_BYTES) return null
    }
    if (msgLen >= 0 && have >= msgLen + 4) return Buffer.concat(chunks, have).subarray(4, 4 + msgLen)
  }
}

/** A partial record header is only worth waiting for if what we have of it is plausible. */
function prefixLooksLikeTls(buf: Buffer, off: number): boolean {
  if (buf.length - off >= 1 && buf[off] !== CONTENT_HANDSHAKE) return false
  if (buf.length - off >= 2 && buf[off + 1] !== 0x03) return false
  return true
}

/** Bounds-checked cursor over one buffer; every read returns null past the end. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    private pos = 0,
    private readonly end = buf.length,
  ) {}
  get remaining(): number {
    return this.end - this.pos
  }
  u8(): number | null {
    return this.remaining >= 1 ? this.buf[this.pos++]! : null
  }
  u16(): number | null {
    if (this.remaining < 2) return null
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }
  bytes(n: number | null): Buffer | null {
    if (n === null || this.remaining < n) return null
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
  /** A sub-cursor over the next `n` bytes (a length-prefixed vector). */
  vector(n: number | null): Cursor | null {
    const b = this.bytes(n)
    return b === null ? null : new Cursor(b)
  }
}

function parseHelloBody(body: Buffer): ClientHelloResult | null {
  const c = new Cursor(body)
  if (c.bytes(2 + 32) === null) return null // legacy_version, random
  const sessionId = c.vector(c.u8())
  if (sessionId === null || sessionId.remaining > 32) return null
  const suites = c.vector(c.u16())
  if (suites === null || suites.remaining < 2 || suites.remaining % 2 !== 0) return null
  const compression = c.vector(c.u8())
  if (compression === null || compression.remaining < 1) return null
  // Pre-TLS 1.2 hellos may stop here: no extensions at all.
  if (c.remaining === 0) return { kind: 'hello', sni: null, alpn: [] }
  const exts = c.vector(c.u16())
  if (exts === null || c.remaining !== 0) return null
  return parseExtensions(exts)
}

function parseExtensions(exts: Cursor): ClientHelloResult | null {
  let sni: string | null = null
  let alpn: string[] = []
  const seen = new Set<number>()
  while (exts.remaining > 0) {
    const type = exts.u16()
    const data = exts.vector(exts.u16())
    if (type === null || data === null) return null
    // RFC 8446 §4.2: at most one extension of each type. Two SNIs would let a
    // filter and the origin read different names.
    if (seen.has(type)) return null
    seen.add(type)
    if (type === EXT_SERVER_NAME) {
      sni = parseServerName(data)
      if (sni === null) return null
    } else if (type === EXT_ALPN) {
      const list = parseAlpn(data)
      if (list === null) return null
      alpn = list
    }
  }
  return { kind: 'hello', sni, alpn }
}

function parseServerName(data: Cursor): string | null {
  const list = data.vector(data.u16())
  if (list === null || data.remaining !== 0) return null
  let host: string | null = null
  while (list.remaining > 0) {
    const type = list.u8()
    const name = list.bytes(list.u16())
    if (type === null || name === null) return null
    if (type === NAME_TYPE_HOST) {
      if (host !== null || name.length === 0) return null
      // latin1 maps bytes 1:1, so nothing is hidden by decoding; normalizeHost judges it.
      host = name.toString('latin1')
    }
  }
  return host
}

function parseAlpn(data: Cursor): string[] | null {
  const list = data.vector(data.u16())
  if (list === null || data.remaining !== 0 || list.remaining === 0) return null
  const out: string[] = []
  while (list.remaining > 0) {
    const proto = list.bytes(list.u8())
    if (proto === null || proto.length === 0) return null
    out.push(proto.toString('latin1'))
  }
  return out
}
