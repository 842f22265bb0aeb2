/**
 * Sandbox credentials (SPEC §9): a short-lived identity that carries itself, so that any instance
 * holding the signing key accepts it with no storage. Encoding, signing and checking only; no clock
 * (`nowMs` is a parameter) and no I/O.
 *
 *   token   = "pcs1." base64url(payload) "." base64url(HMAC-SHA256(key, "portcullis-sandbox-v1\n" payload))
 *   payload = {"v":1,"agent":A,"id":ULID,"iat":S,"exp":S,"labels":{k:v,…}}   (keys in this order, labels by key)
 *
 * Why HMAC-SHA256 over a canonical, versioned payload, and not a JWS or PASETO library:
 * - the same party issues and checks (every instance has the key), so a MAC is all that is needed:
 *   no key pairs, and nothing here can be verified by a sandbox anyway;
 * - nothing is negotiated: the `pcs1` prefix fixes the algorithm (no `alg` header, so none of the
 *   JWT `none`/HS-RS confusion), and the MAC input starts with a domain string, so the key signs
 *   nothing else by accident;
 * - canonical: one claim set has exactly one payload. The checker re-encodes the claims it decoded
 *   and requires the same bytes, so re-spellings (key order, spacing, duplicate keys, escapes, base64
 *   padding or stray bits) are refused rather than accepted as the same token;
 * - node:crypto alone, compared with timingSafeEqual on equal-length digests: no dependency to
 *   follow for advisories, and it runs per request in microseconds.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto'

export const TOKEN_PREFIX = 'pcs1'
const MAC_DOMAIN = 'portcullis-sandbox-v1\n'
const VERSION = 1

export type SandboxLabels = Readonly<Record<string, string>>

export interface SandboxClaims {
  readonly agent: string
  /** A ULID made at issue time (its time part is `iat`, give or take the second). */
  readonly id: string
  /** Issued at / expires at, whole seconds since the epoch. */
  readonly iat: number
  readonly exp: number
  readonly labels: SandboxLabels
}

/** A signing key and its fingerprint (what an open connection remembers instead of the key). */
export interface SigningKey {
  readonly key: Buffer
  /** Hex of the first 8 bytes of sha256(key): names the key in logs and on open connections. */
  readonly id: string
}

export const MIN_KEY_BYTES = 32
export const MAX_LABELS = 16
/** The labels' JSON at most this long, so a token stays well inside Proxy-Authorization's 4 KiB. */
export const MAX_LABELS_JSON = 1024
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/
const LABEL_VALUE = /^[\x20-\x7e]{0,128}$/
const AGENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** A ULID: 26 Crockford base-32 characters, the first 0–7 (its 48-bit time part). */
export const SANDBOX_ID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/
const B64URL = /^[A-Za-z0-9_-]+$/
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

export function signingKey(key: Buffer): SigningKey {
  return { key, id: hash('sha256', key, 'hex').slice(0, 16) }
}

/** Why a label set cannot go into a credential, or null when it can. */
export function labelProblem(labels: SandboxLabels): string | null {
  const keys = Object.keys(labels)
  if (keys.length > MAX_LABELS) return `at most ${MAX_LABELS} labels`
  for (const k of keys) {
    if (!LABEL_KEY.test(k)) return `label key '${k.slice(0, 70)}' must be letters, digits, . _ - (at most 63)`
    if (!LABEL_VALUE.test(labels[k] ?? ''))
      return `label ${k}: the value must be printable ASCII, at most 128 characters`
  }
  if (JSON.stringify(labels).length > MAX_LABELS_JSON) return `labels take at most ${MAX_LABELS_JSON} characters`
  return null
}

/** The one payload of a claim set: fixed key order, labels sorted by key. */
export function canonicalPayload(c: SandboxClaims): string {
  const labels: Record<string, string> = {}
  for (const k of Object.keys(c.labels).sort()) labels[k] = c.labels[k] as string
  return JSON.stringify({ v: VERSION, agent: c.agent, id: c.id, iat: c.iat, exp: c.exp, labels })
}

function mac(key: Buffer, payloadB64: string): Buffer {
  return createHmac('sha256', key).update(MAC_DOMAIN).update(payloadB64).digest()
}

export function encodeSandboxToken(c: SandboxClaims, key: SigningKey): string {
  const payload = Buffer.from(canonicalPayload(c), 'utf8').toString('base64url')
  return `${TOKEN_PREFIX}.${payload}.${mac(key.key, payload).toString('base64url')}`
}

export type TokenCheck =
  | { readonly kind: 'ok'; readonly claims: SandboxClaims; readonly keyId: string }
  | { readonly kind: 'invalid'; readonly detail: 'malformed_token' | 'bad_signature' }

/**
 * Is this a token one of `keys` signed, in canonical form? The MAC is checked first, against every
 * key (current, then previous), so a forged payload is never parsed; then the payload must be
 * exactly the canonical encoding of what it decodes to. Times are checkTimes' business.
 */
export function verifySandboxToken(token: string, keys: readonly SigningKey[]): TokenCheck {
  const parts = token.split('.')
  const [prefix, payloadB64, macB64] = parts
  if (parts.length !== 3 || prefix !== TOKEN_PREFIX || payloadB64 === undefined || macB64 === undefined)
    return { kind: 'invalid', detail: 'malformed_token' }
  if (!B64URL.test(payloadB64) || !B64URL.test(macB64)) return { kind: 'invalid', detail: 'malformed_token' }
  const given = Buffer.from(macB64, 'base64url')
  if (given.length !== 32 || given.toString('base64url') !== macB64)
    return { kind: 'invalid', detail: 'malformed_token' }
  let keyId: string | null = null
  // Every key is tried, whichever matches: the time taken does not say which one did.
  for (const k of keys) if (timingSafeEqual(mac(k.key, payloadB64), given) && keyId === null) keyId = k.id
  if (keyId === null) return { kind: 'invalid', detail: 'bad_signature' }
  const claims = decodePayload(payloadB64)
  return claims === null ? { kind: 'invalid', detail: 'malformed_token' } : { kind: 'ok', claims, keyId }
}

function decodePayload(payloadB64: string): SandboxClaims | null {
  const bytes = Buffer.from(payloadB64, 'base64url')
  if (bytes.toString('base64url') !== payloadB64) return null
  let raw: unknown
  try {
    raw = JSON.parse(bytes.toString('utf8'))
  } catch {
    return null
  }
  if (raw === null || typeof raw !== 'object') return null
  const o = raw as Record<string, unknown>
  if (o.v !== VERSION || typeof o.agent !== 'string' || typeof o.id !== 'string') return null
  if (!Number.isSafeInteger(o.iat) || !Number.isSafeInteger(o.exp)) return null
  if (o.labels === null || typeof o.labels !== 'object' || Array.isArray(o.labels)) return null
  const labels = o.labels as Record<string, unknown>
  if (!Object.values(labels).every((v) => typeof v === 'string')) return null
  const claims: SandboxClaims = {
    agent: o.agent,
    id: o.id,
    iat: o.iat as number,
    exp: o.exp as number,
    labels: labels as Record<string, string>,
  }
  if (!AGENT.test(claims.agent) || !SANDBOX_ID.test(claims.id) || labelProblem(claims.labels) !== null) return null
  // The id's time part is the issue time (to the second): a revocation is kept until then plus
  // max_sandbox_ttl, by which time any credential of that id has expired.
  if (Math.floor(idTimeMs(claims.id) / 1000) !== claims.iat) return null
  // Canonical form: what was signed must be the one encoding of these claims.
  if (Buffer.from(canonicalPayload(claims), 'utf8').toString('base64url') !== payloadB64) return null
  return claims
}

/** Clocks of the issuer and the proxy may disagree by this much. */
export const CLOCK_SKEW_S = 60

export type TimeProblem = 'expired' | 'not_yet_valid' | 'ttl_exceeds_max'

/**
 * Is the credential within its life now, and no longer-lived than the proxy allows? A token signed
 * (offline, or by an instance with a larger max_sandbox_ttl) for longer than max_sandbox_ttl is
 * refused whole, not cut short: its issuer asked for something the proxy does not give.
 */
export function checkTimes(c: SandboxClaims, nowMs: number, maxTtlMs: number): TimeProblem | null {
  if (c.exp * 1000 <= nowMs) return 'expired'
  if (c.iat * 1000 > nowMs + CLOCK_SKEW_S * 1000) return 'not_yet_valid'
  if (c.exp <= c.iat || (c.exp - c.iat) * 1000 > maxTtlMs) return 'ttl_exceeds_max'
  return null
}

/** The time part of a ULID, in ms. */
export function idTimeMs(id: string): number {
  let t = 0
  for (const ch of id.slice(0, 10)) t = t * 32 + CROCKFORD.indexOf(ch)
  return t
}

/** `ci+01JD…`: the proxy user of a sandbox; agent ids cannot contain `+`, so the split is unambiguous. */
export function sandboxUser(agent: string, id: string): string {
  return `${agent}+${id}`
}

export function parseSandboxUser(user: string): { readonly agent: string; readonly id: string } | null {
  const plus = user.indexOf('+')
  if (plus <= 0) return null
  return { agent: user.slice(0, plus), id: user.slice(plus + 1) }
}

/**
 * A signing key from its environment value: base64 (standard or URL-safe), at least 32 bytes once
 * decoded. A shorter or unreadable value is refused rather than used: a short HMAC key can be guessed.
 */
export function parseSigningKey(text: string): SigningKey | { readonly problem: string } {
  const t = text.trim()
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) return { problem: 'is not base64' }
  const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
  if (key.length < MIN_KEY_BYTES)
    return {
      problem: `decodes to ${key.length} bytes; use at least ${MIN_KEY_BYTES} random bytes (openssl rand -base64 32)`,
    }
  return signingKey(key)
}
