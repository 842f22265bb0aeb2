import { lookup } from 'node:dns/promises'
import { classifyAddress, isAddressAllowed } from './address-class.js'
import { isIpLiteral, normalizeHost } from './host.js'
import { mapSocketError } from './dial.js'
import type { Cidr } from './host.js'
import { createHostLookup, type HostLookup } from './host-lookup.js'

export interface Resolved {
  readonly kind: 'resolved'
  /** The address that was checked and must be dialled. */
  readonly address: string
}

/** What the resolver needs of the upstream settings: pins and the private ranges let through. */
export interface ResolveSettings {
  readonly resolve: ReadonlyMap<string, readonly string[]>
  readonly allowPrivate: readonly Cidr[]
  /** How long a name's answer is used again (upstream.dns_cache_ttl_ms); 0 keeps nothing. */
  readonly dnsCacheTtlMs: number
}

/** A refusal in the shape of the policy's deny decision (net knows the shape, not the policy). */
export interface ResolveDenial {
  readonly verdict: 'deny'
  readonly reason: 'upstream_error' | 'denied_private_address'
  readonly ruleId: null
  readonly detail: string
  /** The sentence for the denial body: names the refused address and the setting that exempts it. */
  readonly explanation?: string
}

/** Why a host cannot be dialled, with the address refused (null when there was none: DNS failed). */
export interface Unresolved {
  readonly kind: 'unresolved'
  readonly decision: ResolveDenial
  readonly address: string | null
}

/** Names whose answers are kept at once (process-wide: what getaddrinfo answers is the process's, not an instance's). */
const MAX_NAMES = 10_000

const systemLookup = createHostLookup({
  maxNames: MAX_NAMES,
  lookup: async (host) =>
    (await lookup(host, { all: true, verbatim: true })).map((a) => normalizeHost(a.address) ?? a.address),
})

/**
 * Pins first (upstream.resolve), else DNS (answers kept for dns_cache_ttl_ms, host-lookup.ts).
 * EVERY address is classified, kept or fresh: one private answer among public ones denies the host
 * (a rebinding-style answer set must not win by ordering). The caller dials `address`, never the name.
 */
export async function resolveChecked(
  host: string,
  upstream: ResolveSettings,
  lookupHost: HostLookup = systemLookup,
): Promise<Resolved | Unresolved> {
  const now = resolveCheckedNow(host, upstream, lookupHost)
  if (now !== null) return now
  let addresses: readonly string[]
  try {
    addresses = await lookupHost(host, upstream.dnsCacheTtlMs)
  } catch (err) {
    return {
      kind: 'unresolved',
      decision: { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: mapSocketError(err) },
      address: null,
    }
  }
  return checkAddresses(addresses, upstream)
}

/**
 * resolveChecked's answer at once for an IP literal, a pinned name or a name whose DNS answer is
 * kept; null for one DNS must answer first. (A forwarded request that waits for nothing is decided
 * and sent in one turn.)
 */
export function resolveCheckedNow(
  host: string,
  upstream: ResolveSettings,
  lookupHost: HostLookup = systemLookup,
): Resolved | Unresolved | null {
  if (isIpLiteral(host)) return checkAddresses([host], upstream)
  const known = upstream.resolve.get(host) ?? lookupHost.kept(host, upstream.dnsCacheTtlMs)
  return known ? checkAddresses(known, upstream) : null
}

function checkAddresses(addresses: readonly string[], upstream: ResolveSettings): Resolved | Unresolved {
  if (addresses.length === 0)
    return {
      kind: 'unresolved',
      decision: { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: 'dns' },
      address: null,
    }
  for (const a of addresses) {
    if (!isAddressAllowed(a, upstream.allowPrivate)) {
      return {
        kind: 'unresolved',
        decision: {
          verdict: 'deny',
          reason: 'denied_private_address',
          ruleId: null,
          detail: classifyAddress(a),
          explanation: `the host resolves to ${a} (${classifyAddress(a)}), a private or special-purpose address; an admin who means it to be reachable adds it to upstream.allow_private`,
        },
        address: a,
      }
    }
  }
  return { kind: 'resolved', address: addresses[0] as string }
}
