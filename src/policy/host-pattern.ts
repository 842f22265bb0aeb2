/**
 * Host patterns: exact names, `*.domain` (any depth of subdomain, never the
 * apex), IP literals and CIDRs. Patterns are compiled once; rules are indexed
 * by the compiled key (see rule-index.ts), and `matchHostPattern` is the
 * reference semantics that the index must agree with. PURE.
 */
import { cidrContains, isIpLiteral, normalizeHost, parseCidr, type Cidr } from '../net/host.js'

export type HostPattern =
  /** A DNS name or a single IP address (canonical form), compared by string equality. */
  | { readonly kind: 'exact'; readonly host: string }
  /** `*.suffix`: any name ending in `.suffix`, at any depth, but not `suffix` itself. */
  | { readonly kind: 'wildcard'; readonly suffix: string }
  | { readonly kind: 'cidr'; readonly cidr: Cidr }

export type ParsedHostPattern =
  { readonly ok: true; readonly pattern: HostPattern } | { readonly ok: false; readonly message: string }

/**
 * Compile a host pattern as written in the config. Patterns must already be in
 * normal form (lower-case, A-label, canonical IP, no trailing dot): silently
 * normalising would hide from the operator what is actually matched, so the
 * error suggests the form to write instead (smokescreen does the same).
 */
export function parseHostPattern(text: string): ParsedHostPattern {
  if (text === '*' || text === '*.' || text === '**' || text === '') {
    return fail(`'${text}' would match every host; name the hosts to allow`)
  }
  if (text.startsWith('*.')) return parseWildcard(text)
  if (text.includes('*')) return fail(`'*' is only allowed as a whole first label ('*.example.com')`)
  if (text.includes('/')) {
    const cidr = parseCidr(text)
    if (cidr === null) return fail(`'${text}' is not a valid CIDR`)
    if (cidr.prefix === (cidr.kind === 'ipv4' ? 32 : 128))
      return { ok: true, pattern: { kind: 'exact', host: cidr.text.split('/')[0] ?? '' } }
    return { ok: true, pattern: { kind: 'cidr', cidr } }
  }
  const host = normalizeHost(text)
  if (host === null) return fail(`'${text}' is not a valid host name or IP address`)
  if (host !== text) return fail(`'${text}' is not in normal form; use '${host}'`)
  return { ok: true, pattern: { kind: 'exact', host } }
}

function parseWildcard(text: string): ParsedHostPattern {
  const rest = text.slice(2)
  if (rest.includes('*')) return fail(`'*' is only allowed as a whole first label ('*.example.com')`)
  const suffix = normalizeHost(rest)
  if (suffix === null) return fail(`'${text}' is not a valid wildcard host pattern`)
  if (isIpLiteral(suffix) !== null) return fail(`'${text}': wildcards apply to names, not IP addresses; use a CIDR`)
  // A trailing dot (`*.example.com.`) is a spelling of the same pattern: suggest the canonical one.
  if (suffix !== rest) return fail(`'${text}' is not in normal form; use '*.${suffix}'`)
  return { ok: true, pattern: { kind: 'wildcard', suffix } }
}

function fail(message: string): ParsedHostPattern {
  return { ok: false, message }
}

/** Does the normalised host match? Reference semantics; the rule index implements the same with Map lookups. */
export function matchHostPattern(pattern: HostPattern, host: string): boolean {
  switch (pattern.kind) {
    case 'exact':
      return pattern.host === host
    case 'wildcard':
      return (
        host.length > pattern.suffix.length + 1 && host.endsWith(`.${pattern.suffix}`) && isIpLiteral(host) === null
      )
    case 'cidr':
      return isIpLiteral(host) !== null && cidrContains(pattern.cidr, host)
  }
}

/** How a pattern is shown in summaries and ids (never used for matching). */
export function formatHostPattern(pattern: HostPattern): string {
  switch (pattern.kind) {
    case 'exact':
      return pattern.host
    case 'wildcard':
      return `*.${pattern.suffix}`
    case 'cidr':
      return pattern.cidr.text
  }
}
