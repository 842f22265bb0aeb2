/**
 * Request-target splitting and path normalisation for path rules. PURE.
 *
 * A path rule must see the path the origin will act on, so `%2e%2e`, `//`,
 * `/./` and `%7E` spellings are folded before matching, while an encoded
 * slash (`%2F`) stays encoded: it is data, not a separator. Origins disagree
 * on that last point, so decodedReading gives the other answer for policy to
 * check as well.
 */

/** Split a request target at the first `?`; any `#fragment` is dropped first. */
export function splitTarget(target: string): { path: string; query: string } {
  const hash = target.indexOf('#')
  const noFragment = hash < 0 ? target : target.slice(0, hash)
  const q = noFragment.indexOf('?')
  if (q < 0) return { path: noFragment, query: '' }
  return { path: noFragment.slice(0, q), query: noFragment.slice(q + 1) }
}

const HEX = '0123456789ABCDEF'
// RFC 3986 §2.3 unreserved: decoding these never changes what a path means.
const UNRESERVED = /^[A-Za-z0-9\-._~]$/
// `..;` / `.;` are treated as `..` / `.` by some servers (Tomcat path params);
// refusing them outright is cheaper than guessing every origin's parser.
const DOT_WITH_PARAMS = /^\.\.?;/
// Printable ASCII but `%` and `\`: nothing to decode, encode or refuse (most paths agents send).
const PLAIN_PATH = /^[\x21-\x24\x26-\x5b\x5d-\x7e]*$/

/**
 * Normalise an origin-form path (no query): decode unreserved %XX, upper-case
 * other escapes, collapse `//`, remove dot segments (RFC 3986 §5.2.4, after
 * decoding). null for anything malformed: not starting with `/`, bad escapes,
 * controls, an encoded NUL, raw spaces or backslashes (which some servers read as `/`).
 */
export function normalizePath(rawPath: string): string | null {
  if (!rawPath.startsWith('/')) return null
  const decoded = decodeUnreserved(rawPath)
  return decoded === null ? null : removeDotSegments(decoded)
}

function decodeUnreserved(raw: string): string | null {
  if (PLAIN_PATH.test(raw)) return raw
  let out = ''
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charAt(i)
    const code = raw.charCodeAt(i)
    if (ch === '%') {
      const hex = raw.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null
      const byte = parseInt(hex, 16)
      // An encoded NUL: servers in C (and files on disk) end the path there, `/a.exe%00.txt` is `/a.exe`.
      if (byte === 0) return null
      const c = String.fromCharCode(byte)
      out += UNRESERVED.test(c) ? c : `%${HEX[byte >> 4]}${HEX[byte & 15]}`
      i += 2
    } else if (code <= 0x20 || code === 0x7f || ch === '\\') {
      return null
    } else if (code > 0x7e) {
      // Raw non-ASCII is encoded as UTF-8 so that both spellings compare equal.
      const cp = raw.codePointAt(i) ?? code
      const s = String.fromCodePoint(cp)
      if (cp >= 0xd800 && cp <= 0xdfff) return null // lone surrogate
      out += encodeURIComponent(s)
      i += s.length - 1
    } else {
      out += ch
    }
  }
  return out
}

function removeDotSegments(path: string): string | null {
  // No empty, `.` or `..` segment (each would follow a `/`): already in normal form.
  if (path.charCodeAt(0) === 0x2f && !path.includes('/.') && !path.includes('//')) return path
  const parts = path.slice(1).split('/')
  const out: string[] = []
  let trailingSlash = false
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i] ?? ''
    const last = i === parts.length - 1
    if (DOT_WITH_PARAMS.test(seg)) return null
    if (seg === '' || seg === '.') {
      trailingSlash = last
    } else if (seg === '..') {
      out.pop()
      trailingSlash = last
    } else {
      out.push(seg)
      trailingSlash = false
    }
  }
  const joined = `/${out.join('/')}`
  return trailingSlash && out.length > 0 ? `${joined}/` : joined
}

/**
 * An overlong UTF-8 spelling of an ASCII character, in 2 to 6 bytes (`%C0%AE` and `%F0%80%80%AE` are
 * `.`, `%C0%AF` is `/`): invalid UTF-8, but decoders that do not check (old IIS, some Java stacks)
 * read the character.
 */
const OVERLONG_LEAD = '(?:%C[01]|%E0%8[01]|%F0%80%8[01]|%F8%80%80%8[01]|%FC%80%80%80%8[01])'
const OVERLONG_START = new RegExp(`${OVERLONG_LEAD}%`)
const OVERLONG = new RegExp(`${OVERLONG_LEAD}%[89AB][0-9A-F]`, 'g')
/** What a decoding server may read otherwise: encoded separators, `;params`, escapes spelled twice, overlongs. */
const AMBIGUOUS = new RegExp(`%2F|%5C|%3B|;|%25[0-9A-Fa-f]{2}|${OVERLONG_START.source}`)
/** `%25` before two hex digits: an escape spelled once more (`%252E` is `%2E`, then `.`). */
const ESCAPED_ESCAPE = /%25(?=[0-9A-Fa-f]{2})/g

/**
 * The path as a server that decodes `%2F` and `%5C` to `/` and `%3B` to `;`, and
 * drops `;params` from segments (Tomcat, some Python and Java stacks), would read
 * it, in normal form; the same string when there is nothing to read differently;
 * null when that reading is malformed (e.g. `/a%2F..;b`). Such a server may also
 * decode twice (a front end, then the application): `%252E%252E` is then `..`; or read overlong
 * UTF-8 (`%C0%AE%C0%AE` is then `..`). Input: normalizePath output (escapes upper-case).
 */
export function decodedReading(path: string): string | null {
  if (!AMBIGUOUS.test(path)) return path
  const twice = path.includes('%25') ? decodeUnreserved(path.replace(ESCAPED_ESCAPE, '%')) : path
  if (twice === null) return null
  const once = OVERLONG_START.test(twice) ? decodeUnreserved(twice.replace(OVERLONG, asciiEscape)) : twice
  if (once === null) return null
  const slashes = once.replace(/%2F|%5C/g, '/').replace(/%3B/g, ';')
  const noParams = slashes
    .split('/')
    .map((seg) => (seg.startsWith('..;') || seg.startsWith('.;') ? seg : seg.replace(/;.*$/, '')))
    .join('/')
  return removeDotSegments(noParams)
}

/** The escape of the ASCII character an overlong UTF-8 sequence (as OVERLONG matches it) spells. */
function asciiEscape(seq: string): string {
  const bytes = seq
    .slice(1)
    .split('%')
    .map((h) => parseInt(h, 16))
  // Overlong forms of ASCII: every byte but the last two carries no bit of it.
  const cp = (((bytes.at(-2) as number) & 0x1f) << 6) | ((bytes.at(-1) as number) & 0x3f)
  return `%${HEX[cp >> 4]}${HEX[cp & 15]}`
}
