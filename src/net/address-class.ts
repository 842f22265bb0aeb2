/**
 * Address classification for the private-address block (SPEC "Resolution").
 * PURE. Fails closed: anything not positively public — including unparsable
 * input and IPv6 outside global unicast — is blocked.
 */
import ipaddr from 'ipaddr.js'
import type { Cidr } from './host.js'
import { cidrContains, isIpLiteral, normalizeHost } from './host.js'

export type AddressClass =
  'public' | 'loopback' | 'private' | 'link_local' | 'cgnat' | 'ula' | 'multicast' | 'unspecified' | 'reserved'

// ipaddr.js range names → ours. `as112` and `amt` are globally reachable
// anycast services (IANA special-purpose registry), so they stay public.
const IPV4_RANGES: Readonly<Record<string, AddressClass>> = {
  unicast: 'public',
  as112: 'public',
  amt: 'public',
  unspecified: 'unspecified',
  broadcast: 'reserved',
  multicast: 'multicast',
  linkLocal: 'link_local',
  loopback: 'loopback',
  carrierGradeNat: 'cgnat',
  private: 'private',
  reserved: 'reserved',
}

const IPV6_RANGES: Readonly<Record<string, AddressClass>> = {
  unicast: 'public',
  amt: 'public',
  as112v6: 'public',
  unspecified: 'unspecified',
  linkLocal: 'link_local',
  multicast: 'multicast',
  loopback: 'loopback',
  uniqueLocal: 'ula',
}

/**
 * Classify an IP address. Any spelling normalizeHost accepts is accepted
 * (`0x7f.1`, `[::ffff:7f00:1]`); a scope id (`fe80::1%eth0`) is classified by
 * its address, and is never public because a scoped global address is bogus.
 */
export function classifyAddress(ip: string): AddressClass {
  const zone = ip.indexOf('%')
  const host = normalizeHost(zone < 0 ? ip : ip.slice(0, zone))
  const kind = host === null ? null : isIpLiteral(host)
  if (host === null || kind === null) return 'reserved'
  const cls = kind === 'ipv4' ? classifyIpv4(ipaddr.IPv4.parse(host).octets) : classifyIpv6(ipaddr.IPv6.parse(host))
  return zone >= 0 && cls === 'public' ? 'reserved' : cls
}

function classifyIpv4(octets: readonly number[]): AddressClass {
  const addr = new ipaddr.IPv4(octets.slice(0, 4))
  return IPV4_RANGES[addr.range()] ?? 'reserved'
}

function classifyIpv6(addr: ipaddr.IPv6): AddressClass {
  const b = addr.toByteArray()
  const range = addr.range()
  const embedded = embeddedIpv4(range, b)
  if (embedded !== null) {
    const inner = classifyIpv4(embedded.octets)
    // NAT64 of a public address is how IPv6-only networks reach the v4
    // internet; the other embeddings are transition or legacy forms with no
    // business in egress traffic, so they are blocked even when public.
    if (inner !== 'public') return inner
    return embedded.publicOk ? 'public' : 'reserved'
  }
  const named = IPV6_RANGES[range]
  // Global unicast is 2000::/3; everything else unnamed is unallocated.
  if (named === 'public') return (b[0] ?? 0) >> 5 === 1 ? 'public' : 'reserved'
  return named ?? 'reserved'
}

interface Embedded {
  readonly octets: readonly number[]
  readonly publicOk: boolean
}

function embeddedIpv4(range: string, b: readonly number[]): Embedded | null {
  const tail = b.slice(12, 16)
  switch (range) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return { octets: tail, publicOk: false }
    case 'rfc6052': {
      // 64:ff9b::/96 is the well-known NAT64 prefix; 64:ff9b:1::/48 is for
      // local use (RFC 8215) and is checked with the /96 layout, then blocked.
      const wellKnown = b[4] === 0 && b[5] === 0
      return { octets: tail, publicOk: wellKnown }
    }
    case '6to4':
      return { octets: b.slice(2, 6), publicOk: false }
    case 'teredo':
      // RFC 4380: the client's address is stored bit-inverted in the last 32 bits.
      return { octets: tail.map((x) => x ^ 0xff), publicOk: false }
    default:
      break
  }
  // IPv4-compatible ::a.b.c.d (deprecated); `::` and `::1` are named ranges.
  if (range === 'unicast' && b.slice(0, 12).every((x) => x === 0)) return { octets: tail, publicOk: false }
  return null
}

/** Every class but `public` is blocked unless allow_private names the address. */
export function isBlockedAddressClass(c: AddressClass): boolean {
  return c !== 'public'
}

// Classes of recently seen addresses: classification parses the address (ipaddr.js) and every
// request to a host resolves to one of a few addresses. A pure function's memo; bounded.
const classCache = new Map<string, AddressClass>()
const CLASS_CACHE_MAX = 4096

function cachedClass(ip: string): AddressClass {
  let c = classCache.get(ip)
  if (c === undefined) {
    c = classifyAddress(ip)
    if (classCache.size >= CLASS_CACHE_MAX) classCache.clear()
    classCache.set(ip, c)
  }
  return c
}

// Verdicts for addresses allow_private may admit, per allow_private list (a reload makes a new list):
// cidrContains parses the address again on every request to such a host (4 % of a forwarded
// request's CPU when the origin is on loopback). Bounded like classCache.
const allowedCache = new WeakMap<readonly Cidr[], Map<string, boolean>>()

/** May the proxy connect to `ip`? Public, or named by `upstream.allow_private`. */
export function isAddressAllowed(ip: string, allowPrivate: readonly Cidr[]): boolean {
  if (!isBlockedAddressClass(cachedClass(ip))) return true
  let verdicts = allowedCache.get(allowPrivate)
  if (verdicts === undefined) allowedCache.set(allowPrivate, (verdicts = new Map()))
  let allowed = verdicts.get(ip)
  if (allowed === undefined) {
    const host = normalizeHost(ip)
    allowed = host !== null && allowPrivate.some((cidr) => cidrContains(cidr, host))
    if (verdicts.size >= CLASS_CACHE_MAX) verdicts.clear()
    verdicts.set(ip, allowed)
  }
  return allowed
}
