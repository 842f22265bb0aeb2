/**
 * Parse a `Proxy-Authorization` header value. PURE. Credentials are only
 * parsed here; authenticate.ts compares them. Nothing here may log them.
 */

export type ProxyAuthorization =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic'; readonly user: string; readonly password: string }
  | { readonly kind: 'malformed' }

/** Longer values are refused before decoding so a client cannot make us work. */
export const PROXY_AUTHORIZATION_MAX_CHARS = 4096

// RFC 7235 credentials: scheme, one or more spaces, token68. Strict base64
// (RFC 4648 §4 alphabet, padded) so that two spellings of one secret cannot exist.
const CREDENTIALS = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +([A-Za-z0-9+/]*={0,2})$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

export function parseProxyAuthorization(value: string | undefined): ProxyAuthorization {
  if (value === undefined) return { kind: 'none' }
  if (value.length > PROXY_AUTHORIZATION_MAX_CHARS) return { kind: 'malformed' }
  const m = CREDENTIALS.exec(value.trim())
  const scheme = m?.[1]
  const b64 = m?.[2]
  if (scheme === undefined || b64 === undefined || scheme.toLowerCase() !== 'basic') return { kind: 'malformed' }
  if (b64.length === 0 || b64.length % 4 !== 0) return { kind: 'malformed' }
  const bytes = Buffer.from(b64, 'base64')
  // Node's decoder is lenient (ignores non-zero padding bits); the round trip
  // rejects every non-canonical encoding.
  if (bytes.toString('base64') !== b64) return { kind: 'malformed' }
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return { kind: 'malformed' }
  }
  const colon = text.indexOf(':')
  if (colon < 0) return { kind: 'malformed' }
  return { kind: 'basic', user: text.slice(0, colon), password: text.slice(colon + 1) }
}
