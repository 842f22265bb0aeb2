/**
 * The spellings an origin's parsers turn back into plain text, decoded only where they occur. PURE.
 *
 * A credential may reach the scan spelled as a form or cookie parser reads it (`%41KIA…`,
 * `-----BEGIN+RSA+PRIVATE+KEY-----`), as a JSON parser reads it (`\u0041KIA…`, `wJal\/K7…`), or as
 * UTF-16 (a NUL after every ASCII character). Rather than copy and rescan the whole text once per
 * spelling, each spelling yields windows: the decoded text around its escapes, with as much plain
 * context either side as a detector can read, merged where they meet. A match that no escape
 * touches is a match in the raw text, which is scanned as it is; so raw text plus windows find what
 * the whole decoded text would. A text without escapes costs one `indexOf` per spelling; one full of
 * them, one pass per spelling over its characters. The windows of one spelling never add up to more
 * than the text plus twice the context per window.
 */
import { Buffer } from 'node:buffer'

interface Spelling {
  /** The one character every escape starts with. */
  readonly trigger: number
  /** The escape at `at` as `escape(length, code)`, or -1 when `at` starts none. */
  readonly decode: (text: string, at: number) => number
  /** `+` reads as a space between escapes (forms and queries). */
  readonly plusIsSpace: boolean
}

/** Decoded text around one run of escapes; detectors look for matches starting in [from, to) only. */
export interface Window {
  readonly text: string
  readonly from: number
  readonly to: number
  /** When asked for: the raw index each character of `text` came from, and one past the last. */
  readonly rawAt: readonly number[] | null
}

/** Escapes travel as one number, not an object each: a body of nothing but escapes holds a great many. */
const escape = (length: number, code: number): number => length * 0x20000 + code + 1
const DROPPED = -1 // the code of an escape that stands for nothing (a NUL of UTF-16)
const lengthOf = (e: number): number => Math.floor(e / 0x20000)
const codeOf = (e: number): number => (e % 0x20000) - 1

/**
 * Queries, cookies and forms: `%XX`, and `+` for a space. Only `%XX` opens a window: a `+` alone
 * changes what two detectors read (PEM headers and the AWS secret's separators), and they read the
 * raw text both ways (scan-detectors.ts `plusIsSpace`), so base64 is not scanned twice for its `+`.
 */
const PERCENT: Spelling = {
  trigger: 0x25,
  decode: (text, at) => {
    const code = hexAt(text, at + 1, 2)
    return code < 0 ? -1 : escape(3, code)
  },
  plusIsSpace: true,
}

const JSON_SIMPLE: Record<string, number> = { '"': 34, '\\': 92, '/': 47, b: 8, f: 12, n: 10, r: 13, t: 9 }

/** JSON string escapes: `\uXXXX` and `\/`, `\"`, `\\`, `\n`… (a backslash before anything else stays). */
const JSON_STRING: Spelling = {
  trigger: 0x5c,
  decode: (text, at) => {
    const next = text[at + 1] ?? ''
    if (next === 'u') {
      const code = hexAt(text, at + 2, 4)
      return code < 0 ? -1 : escape(6, code)
    }
    const simple = JSON_SIMPLE[next]
    return simple === undefined ? -1 : escape(2, simple)
  },
  plusIsSpace: false,
}

/** UTF-16 read byte by byte: the NULs dropped. */
const UTF16: Spelling = { trigger: 0, decode: () => escape(1, DROPPED), plusIsSpace: false }

const SPELLINGS: readonly Spelling[] = [PERCENT, JSON_STRING, UTF16]

function hexAt(text: string, at: number, digits: number): number {
  if (at + digits > text.length) return -1
  let code = 0
  for (let i = at; i < at + digits; i++) {
    const c = text.charCodeAt(i)
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1
    if (d < 0) return -1
    code = code * 16 + d
  }
  return code
}

/**
 * Every spelling's windows over `raw`, in spelling order and then text order. `context` is how far
 * a detector reads from a match's start, plus one for the character before it.
 */
export function* spellingWindows(raw: string, context: number, withOffsets = false): Generator<Window> {
  for (const spelling of SPELLINGS) yield* windowsOf(spelling, raw, context, withOffsets)
}

function* windowsOf(spelling: Spelling, raw: string, context: number, withOffsets: boolean): Generator<Window> {
  const trigger = String.fromCharCode(spelling.trigger)
  for (let i = raw.indexOf(trigger); i >= 0;) {
    if (spelling.decode(raw, i) < 0) {
      i = raw.indexOf(trigger, i + 1)
      continue
    }
    const w = decodeWindow(spelling, raw, i, context, withOffsets)
    yield w.window
    i = w.nextTrigger
  }
}

/**
 * The window that starts with the escape at `first`: `context` + 1 plain characters before it, then
 * everything up to the first stretch of more than 2 × `context` + 1 characters without an escape
 * (the next window's context could not reach this one's), of which `context` are kept.
 */
function decodeWindow(
  spelling: Spelling,
  raw: string,
  first: number,
  context: number,
  withOffsets: boolean,
): { window: Window; nextTrigger: number } {
  const trigger = String.fromCharCode(spelling.trigger)
  const start = Math.max(0, first - context - 1)
  const out = new DecodedText(Math.min(raw.length - start, 4096), spelling.plusIsSpace, withOffsets)
  out.addPlain(raw, start, first)
  let lastEnd = first // raw index after the last escape
  let lastOut = 0 // decoded length after the last escape
  let j = first
  let next = first // the next trigger at or after j, or -1
  for (;;) {
    // Plain text up to the next trigger, or until the gap since the last escape is too long to bridge.
    const stop = Math.min(next < 0 ? raw.length : next, lastEnd + 2 * context + 2)
    out.addPlain(raw, j, stop)
    j = stop
    if (j !== next) break
    const found = spelling.decode(raw, j)
    if (found < 0) {
      out.addPlain(raw, j, j + 1)
      j++
    } else {
      if (codeOf(found) !== DROPPED) out.addDecoded(codeOf(found), j)
      j += lengthOf(found)
      lastEnd = j
      lastOut = out.length
    }
    next = raw.indexOf(trigger, j)
  }
  const length = Math.min(out.length, lastOut + context)
  const window: Window = {
    text: out.text(length),
    // A match that reaches the first escape starts at most `context` before it.
    from: Math.max(0, first - start - context),
    // One right after the last escape still has it as the character before.
    to: Math.min(lastOut + 1, length),
    rawAt: out.offsets(length, j),
  }
  return { window, nextTrigger: next < 0 || next >= j ? next : raw.indexOf(trigger, j) }
}

/** Decoded characters as latin1 bytes, and where each came from when asked. */
class DecodedText {
  private bytes: Uint8Array
  length = 0
  private readonly rawAt: number[] | null

  constructor(
    capacity: number,
    private readonly plusIsSpace: boolean,
    withOffsets: boolean,
  ) {
    this.bytes = new Uint8Array(Math.max(capacity, 16))
    this.rawAt = withOffsets ? [] : null
  }

  /** raw[from, to) as it reads between escapes. */
  addPlain(raw: string, from: number, to: number): void {
    this.reserve(to - from)
    const bytes = this.bytes
    let n = this.length
    for (let i = from; i < to; i++) {
      const c = raw.charCodeAt(i)
      bytes[n++] = c === 0x2b && this.plusIsSpace ? 0x20 : c < 0x100 ? c : outsideLatin1(c)
    }
    this.length = n
    if (this.rawAt !== null) for (let i = from; i < to; i++) this.rawAt.push(i)
  }

  addDecoded(code: number, at: number): void {
    this.reserve(1)
    this.bytes[this.length++] = code < 0x100 ? code : outsideLatin1(code)
    this.rawAt?.push(at)
  }

  text(length: number): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, length).toString('latin1')
  }

  offsets(length: number, rawEnd: number): readonly number[] | null {
    if (this.rawAt === null) return null
    const at = this.rawAt.slice(0, length)
    at.push(length < this.length ? this.rawAt[length]! : rawEnd)
    return at
  }

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n))
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }
}

/**
 * A character past U+00FF is in no detector's class; the only thing one can be to a detector is
 * whitespace (the AWS secret's separators read `\s`). Two latin1 stand-ins keep exactly that.
 */
function outsideLatin1(code: number): number {
  const space =
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  return space ? 0x20 : 0x01
}
