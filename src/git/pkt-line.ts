/**
 * Git pkt-line framing (gitprotocol-common(5)): a 4-hex-digit length that
 * counts itself, then the payload; `0000` flush, `0001` delim, `0002`
 * response-end. PURE.
 *
 * The reader never trusts a length before checking it: lengths 1–3 are
 * reserved, anything past 65520 is refused (git's LARGE_PACKET_MAX), and an
 * incomplete packet is `need_more`, so a caller can feed it a growing prefix.
 * The hex is read case-insensitively because git's own reader (hexval) is.
 */

/** Largest pkt-line git sends or accepts, length header included. */
export const PKT_MAX_LEN = 65520
/** Largest payload of one data pkt-line. */
export const PKT_MAX_PAYLOAD = PKT_MAX_LEN - 4
/** Packet size limit of the old `side-band` capability (git's DEFAULT_PACKET_MAX). */
export const SIDE_BAND_MAX_LEN = 1000

export type PktLine =
  | { readonly kind: 'data'; readonly payload: Buffer }
  | { readonly kind: 'flush' }
  | { readonly kind: 'delim' }
  | { readonly kind: 'response_end' }

export type PktInvalid = 'bad_length' | 'reserved_length' | 'too_long'

export type PktReadResult =
  | { readonly kind: 'packet'; readonly packet: PktLine; readonly next: number }
  | { readonly kind: 'need_more' }
  | { readonly kind: 'invalid'; readonly detail: PktInvalid }

const FLUSH: PktLine = Object.freeze({ kind: 'flush' })
const DELIM: PktLine = Object.freeze({ kind: 'delim' })
const RESPONSE_END: PktLine = Object.freeze({ kind: 'response_end' })
const NEED_MORE: PktReadResult = Object.freeze({ kind: 'need_more' })

export const FLUSH_PKT: Buffer = Buffer.from('0000', 'latin1')

/** Read the pkt-line starting at `offset`. The payload is a view into `buf`, not a copy. */
export function readPktLine(buf: Buffer, offset: number): PktReadResult {
  if (buf.length - offset < 4) {
    // Refuse a bad digit as soon as it is visible rather than waiting for more.
    for (let i = offset; i < buf.length; i++) if (hexValue(buf[i]!) < 0) return invalid('bad_length')
    return NEED_MORE
  }
  let len = 0
  for (let i = 0; i < 4; i++) {
    const v = hexValue(buf[offset + i]!)
    if (v < 0) return invalid('bad_length')
    len = len * 16 + v
  }
  if (len === 0) return { kind: 'packet', packet: FLUSH, next: offset + 4 }
  if (len === 1) return { kind: 'packet', packet: DELIM, next: offset + 4 }
  if (len === 2) return { kind: 'packet', packet: RESPONSE_END, next: offset + 4 }
  if (len === 3) return invalid('reserved_length')
  if (len > PKT_MAX_LEN) return invalid('too_long')
  if (buf.length - offset < len) return NEED_MORE
  return {
    kind: 'packet',
    packet: { kind: 'data', payload: buf.subarray(offset + 4, offset + len) },
    next: offset + len,
  }
}

/** A payload without its one optional trailing LF (receivers must accept both forms). */
export function chompLf(payload: Buffer): Buffer {
  return payload.length > 0 && payload[payload.length - 1] === 0x0a ? payload.subarray(0, -1) : payload
}

/**
 * One data pkt-line. A payload that does not fit is a bug in the caller
 * (every writer here bounds its text first), so it throws.
 */
export function encodePktLine(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  if (body.length > PKT_MAX_PAYLOAD)
    throw new Error(`pkt-line payload of ${body.length} bytes exceeds ${PKT_MAX_PAYLOAD}`)
  return Buffer.concat([Buffer.from(lengthHex(body.length + 4), 'latin1'), body])
}

/**
 * Cut `data` into side-band packets on `band` (1 data, 2 progress, 3 fatal
 * error), each at most `maxPacketLen` bytes long including the 4-byte length
 * and the band byte, as git's send_sideband does.
 */
export function encodeSideBand(band: 1 | 2 | 3, data: Buffer, maxPacketLen: number): Buffer {
  if (maxPacketLen < 6 || maxPacketLen > PKT_MAX_LEN) throw new Error(`bad side-band packet size ${maxPacketLen}`)
  const room = maxPacketLen - 5
  const parts: Buffer[] = []
  for (let off = 0; off < data.length; off += room) {
    const piece = data.subarray(off, off + room)
    parts.push(Buffer.from(lengthHex(piece.length + 5), 'latin1'), Buffer.from([band]), piece)
  }
  return Buffer.concat(parts)
}

function lengthHex(n: number): string {
  return n.toString(16).padStart(4, '0')
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  return -1
}

function invalid(detail: PktInvalid): PktReadResult {
  return { kind: 'invalid', detail }
}
