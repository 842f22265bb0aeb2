/**
 * THE host normaliser (STYLE §1.3: exactly one exists). Every host that reaches
 * policy, resolution or a log goes through `normalizeHost`, so that spelling
 * tricks (`0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]`, `EXAMPLE.com.`, Unicode
 * vs punycode) cannot get around a rule. PURE: no I/O.
 */
import { domainToASCII, domainToUnicode } from 'node:url'
import ipaddr from 'ipaddr.js'

/** Cheap upper bound checked before any parsing work (a DNS name is ≤ 253 octets). */
const MAX_INPUT_CHARS = 1024
const MAX_NAME_CHARS = 253
const MAX_LABEL_CHARS = 63
// `%` would be percent-decoded by the WHATWG parser (and is a zone-id separator);
// whitespace and controls never belong in a host. `\u0085`/`\u00a0` etc. are caught by \s.
const FORBIDDEN_RAW = /[%\s\x00-\x1f\x7f]/
// After IDNA only LDH plus `_` (real DNS has `_dmarc`, `_acme-challenge`) is accepted;
// the WHATWG parser alone would let `!`, `*`, `$`, `'` … through.
const LABEL = /^[a-z0-9_-]+$/
// domainToASCII parses its argument as a URL, so `a.com/x`, `a.com?x`, `a.com#x`
// and `a.com\\x` all come back as `a.com`: every ASCII character outside a
// name's alphabet must be refused before it is called. (Non-ASCII goes to IDNA.)
const FORBIDDEN_ASCII = /[^A-Za-z0-9._\-\u0080-\uffff]/
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/
const DOTTED_QUAD = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

/**
 * Normalise a host for comparison: lower-case, one trailing dot stripped, IDNA
 * A-label, canonical IP literal (any IPv4 spelling → dotted quad; IPv6 compressed,
 * lower-case, no brackets; IPv4-mapped IPv6 → IPv4). null when invalid.
 */
/** A network in CIDR form, compiled once (see parseCidr). */
export interface Cidr {
  readonly text: string
  readonly kind: 'ipv4' | 'ipv6'
  readonly bytes: Uint8Array
  readonly prefix: number
}

export function normalizeHost(input: string): string | null {
  if (input.length === 0 || input.length > MAX_INPUT_CHARS || FORBIDDEN_RAW.test(input)) return null
  if (input.startsWith('[')) {
    return input.endsWith(']') ? normalizeIpv6(input.slice(1, -1)) : null
  }
  if (input.includes(':')) return normalizeIpv6(input)
  const name = input.endsWith('.') ? input.slice(0, -1) : input
  if (name.length === 0 || FORBIDDEN_ASCII.test(name)) return null
  const fast = alreadyNormal(name)
  if (fast !== null) return fast
  // The WHATWG host parser does lower-casing, IDNA mapping/punycode and every
  // legacy IPv4 spelling in one step, exactly as browsers and undici see the host.
  const ascii = domainToASCII(name)
  if (ascii === '') return null
  if (DOTTED_QUAD.test(ascii) && ipaddr.IPv4.isValidFourPartDecimal(ascii)) return ascii
  return isValidDnsName(ascii) ? ascii : null
}

// Lower-case LDH(+_) labels, no A-label: the WHATWG parser would return these unchanged.
const PLAIN_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/
// What the WHATWG parser reads as a number in the last label (then the host is an IPv4 address).
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/

/**
 * The common case without calling the IDNA machinery (a measurable share of the per-request cost):
 * a canonical dotted quad, or a lower-case ASCII name that is not an IPv4 spelling and has no
 * `xn--` label to validate. Anything else (upper case, Unicode, A-labels, other IPv4 spellings)
 * takes the full path. Returns null to mean "take the full path", never "invalid".
 */
function alreadyNormal(name: string): string | null {
  if (DOTTED_QUAD.test(name)) return ipaddr.IPv4.isValidFourPartDecimal(name) ? name : null
  if (!PLAIN_NAME.test(name) || name.includes('xn--')) return null
  const last = name.slice(name.lastIndexOf('.') + 1)
  if (NUMERIC_LABEL.test(last)) return null
  return isValidDnsName(name) ? name : null
}

function isValidDnsName(ascii: string): boolean {
  if (ascii.length > MAX_NAME_CHARS) return false
  for (const label of ascii.split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL_CHARS || !LABEL.test(label)) return false
  }
  return true
}

function normalizeIpv6(text: string): string | null {
  const addr = parseIpv6(text)
  if (addr === null) return null
  // A mapped address is dialled as the IPv4 address, so it must be compared as one.
  return addr.isIPv4MappedAddress() ? addr.toIPv4Address().toString() : addr.toString()
}

/**
 * Parse IPv6 via the WHATWG parser's canonical output, so we accept exactly
 * what URL clients accept (no zone ids), and because ipaddr.js 2.5 misreads
 * `::8.8.8.8` as `::ffff:8.8.8.8`; the canonical form has no dotted tail.
 */
function parseIpv6(text: string): ipaddr.IPv6 | null {
  // Same truncation hazard as for names: `::1]/x` would come back as `[::1]`.
  if (!IPV6_CHARS.test(text)) return null
  const checked = domainToASCII(`[${text}]`)
  if (!checked.startsWith('[') || !checked.endsWith(']')) return null
  const canonical = checked.slice(1, -1)
  return ipaddr.IPv6.isValid(canonical) ? ipaddr.IPv6.parse(canonical) : null
}

/** Which kind of IP literal a normalised host is, or null for a DNS name. */
export function isIpLiteral(host: string): 'ipv4' | 'ipv6' | null {
  if (DOTTED_QUAD.test(host)) return ipaddr.IPv4.isValidFourPartDecimal(host) ? 'ipv4' : null
  if (host.includes(':') && !host.includes('%') && ipaddr.IPv6.isValid(host)) return 'ipv6'
  return null
}

const PORT = /^[0-9]{1,5}$/

/**
 * Parse `host:port` (CONNECT target, Host header). IPv6 must be bracketed:
 * `::1:443` cannot be told apart from an address, so it is refused rather
 * than guessed (the classic `lastIndexOf(':')` bug). Without a port the
 * `defaultPort` is used, or the authority is rejected when none is given.
 */
export function parseAuthority(text: string, defaultPort?: number): Authority | null {
  if (text.length === 0 || text.length > MAX_INPUT_CHARS) return null
  // Pure, and asked the same few authorities with every request: answers are remembered, a bounded
  // number (the whole memo is dropped when full, so a flood of names costs one map's worth of memory).
  // One map per default port: no key spelling can make two different questions look alike.
  const byPort = defaultPort ?? 0
  let memo = authorityMemo.get(byPort)
  const known = memo?.get(text)
  if (known !== undefined) return known
  if (authorityMemoEntries >= AUTHORITY_MEMO_SIZE) {
    authorityMemo.clear()
    authorityMemoEntries = 0
    memo = undefined
  }
  if (memo === undefined) authorityMemo.set(byPort, (memo = new Map()))
  const parsed = parseAuthorityUncached(text, defaultPort)
  memo.set(text, parsed)
  authorityMemoEntries++
  return parsed
}

export type Authority = Readonly<{ host: string; port: number }>
const AUTHORITY_MEMO_SIZE = 4096
const authorityMemo = new Map<number, Map<string, Authority | null>>()
let authorityMemoEntries = 0

function parseAuthorityUncached(text: string, defaultPort: number | undefined): Authority | null {
  let hostText: string
  let portText: string | undefined
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return null
    hostText = text.slice(0, close + 1)
    const rest = text.slice(close + 1)
    if (rest !== '' && !rest.startsWith(':')) return null
    portText = rest === '' ? undefined : rest.slice(1)
  } else {
    const parts = text.split(':')
    if (parts.length > 2) return null
    hostText = parts[0] ?? ''
    portText = parts[1]
  }
  const port = portText === undefined ? defaultPort : parsePort(portText)
  if (port === undefined || port === null || !Number.isInteger(port) || port < 1 || port > 65535) return null
  const host = normalizeHost(hostText)
  return host === null ? null : Object.freeze({ host, port })
}

function parsePort(text: string): number | null {
  if (!PORT.test(text)) return null
  const n = Number(text)
  return n >= 1 && n <= 65535 ? n : null
}

/** `host:port` for display or a Host header; IPv6 gets its brackets back. */
export function formatAuthority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** Unicode form of a normalised host, for humans only (never for comparison). */
export function toUnicodeHost(host: string): string {
  if (isIpLiteral(host) !== null) return host
  return domainToUnicode(host) || host
}

/**
 * Parse `addr/prefix` or a bare address (/32 or /128). The address is
 * canonicalised like a host; host bits are masked off, so `10.1.2.3/8` is
 * `10.0.0.0/8`. An IPv4-mapped IPv6 network of /96 or longer becomes the IPv4
 * network it denotes, matching how normalizeHost folds mapped addresses.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/')
  const addrText = slash < 0 ? text : text.slice(0, slash)
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1)
  if (prefixText !== undefined && !/^[0-9]{1,3}$/.test(prefixText)) return null
  if (addrText.includes(':')) return parseIpv6Cidr(addrText, prefixText)
  const host = normalizeHost(addrText)
  if (host === null || isIpLiteral(host) !== 'ipv4') return null
  const prefix = prefixText === undefined ? 32 : Number(prefixText)
  if (prefix > 32) return null
  return makeCidr('ipv4', ipaddr.IPv4.parse(host).toByteArray(), prefix)
}

function parseIpv6Cidr(addrText: string, prefixText: string | undefined): Cidr | null {
  const addr = parseIpv6(addrText)
  const prefix = prefixText === undefined ? 128 : Number(prefixText)
  if (addr === null || prefix > 128) return null
  if (addr.isIPv4MappedAddress() && prefix >= 96) {
    return makeCidr('ipv4', addr.toIPv4Address().toByteArray(), prefix - 96)
  }
  return makeCidr('ipv6', addr.toByteArray(), prefix)
}

function makeCidr(kind: 'ipv4' | 'ipv6', raw: readonly number[], prefix: number): Cidr {
  const bytes = Uint8Array.from(raw)
  maskInPlace(bytes, prefix)
  const addr = ipaddr.fromByteArray(Array.from(bytes))
  return Object.freeze({ text: `${addr.toString()}/${prefix}`, kind, bytes, prefix })
}

function maskInPlace(bytes: Uint8Array, prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    bytes[i] = (bytes[i] ?? 0) & ((0xff00 >> bits) & 0xff)
  }
}

/**
 * Is the normalised IP literal `ip` inside `cidr`? Only the address is parsed
 * per call; the network was compiled once by parseCidr. Families never cross.
 */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const bytes = ipBytes(ip)
  return bytes !== null && cidrContainsBytes(cidr, bytes)
}

/** cidrContains for an address already turned into bytes (ipBytes): one parse for many networks. */
export function cidrContainsBytes(cidr: Cidr, bytes: readonly number[]): boolean {
  if (bytes.length !== cidr.bytes.length) return false
  const whole = cidr.prefix >> 3
  for (let i = 0; i < whole; i++) {
    if (bytes[i] !== cidr.bytes[i]) return false
  }
  const rem = cidr.prefix & 7
  if (rem === 0) return true
  const mask = (0xff00 >> rem) & 0xff
  return ((bytes[whole] ?? 0) & mask) === cidr.bytes[whole]
}

/** A normalised IP literal's bytes (4 or 16), or null for anything else. */
export function ipBytes(ip: string): number[] | null {
  const kind = isIpLiteral(ip)
  if (kind === 'ipv4') return ipaddr.IPv4.parse(ip).octets
  if (kind === null) return null
  // Normalised IPv6 has no dotted tail, so ipaddr.js can parse it directly (fast path).
  const addr = ip.includes('.') ? parseIpv6(ip) : ipaddr.IPv6.parse(ip)
  if (addr === null) return null
  // Defensive: callers should pass normalised hosts, where this cannot happen.
  return addr.isIPv4MappedAddress() ? addr.toIPv4Address().octets : addr.toByteArray()
}
