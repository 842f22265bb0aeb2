/**
 * Sandbox credentials at the proxy's door (SPEC §9): `Proxy-Authorization: Basic` with user
 * `<agent>+<sandbox id>` and a signed token (sandbox-token.ts) as the password. Nothing is looked up
 * but the template agent, the keys and the revocation set: any instance with the key accepts.
 * Every refusal is `denied_auth_invalid` with a detail word, and an explanation for the 407 body.
 */
import { cidrContains } from '../net/host.js'
import type { CompiledPolicy } from '../policy/compiled.js'
import type { CompiledAgent, DenyDecision } from '../policy/types.js'
import {
  checkTimes,
  parseSandboxUser,
  SANDBOX_ID,
  sandboxUser,
  verifySandboxToken,
  type SandboxLabels,
  type SigningKey,
} from './sandbox-token.js'

/** What the proxy checks sandbox credentials against, as it stands now. */
export interface SandboxAuth {
  /** Current key first, then the previous one (rotation). Empty: no usable key, every sandbox refused. */
  readonly keys: readonly SigningKey[]
  readonly maxTtlMs: number
  isRevoked(id: string): boolean
  /**
   * Whether the revocation set is known: an instance that has not read it since start (Redis down)
   * cannot tell a revoked credential from a good one, and refuses them all (fail closed).
   */
  revocationsKnown(): boolean
}

/** An accepted sandbox credential, kept with its connection (never the token). */
export interface SandboxCredential {
  readonly kind: 'sandbox'
  readonly id: string
  readonly labels: SandboxLabels
  readonly expiresAtMs: number
  /** When it was issued: a reload that lowers identity.max_sandbox_ttl below its lifetime ends it. */
  readonly issuedAtMs: number
  /** expiresAtMs as ISO 8601, made once at authentication for every record of the credential. */
  readonly expiresAt: string
  /** Which key signed it: a key no longer configured closes its connections. */
  readonly keyId: string
}

/** What a record says about a sandbox: its id and labels. */
export interface SandboxFacts {
  readonly sandbox: string
  readonly labels: SandboxLabels
  /** When the credential expires (ISO 8601): `sandbox list` tells an expired sandbox from an active one. */
  readonly sandbox_expires_at: string
}

export type SandboxDetail =
  | 'bad_credentials'
  | 'not_a_sandbox_template'
  | 'no_signing_key'
  | 'malformed_token'
  | 'bad_signature'
  | 'wrong_agent'
  | 'expired'
  | 'not_yet_valid'
  | 'ttl_exceeds_max'
  | 'revoked'
  | 'revocations_unknown'
  | 'key_retired'
  | 'source_not_allowed'

/** The 407 body's sentence per detail: from the policy's point of view only, never the request's text. */
const EXPLANATIONS: Readonly<Record<SandboxDetail, string>> = {
  bad_credentials: 'the proxy credentials are not valid',
  not_a_sandbox_template:
    'this agent is not a sandbox template (sandboxes: true), so it takes no <agent>+<sandbox> credentials',
  no_signing_key:
    'the proxy has no usable signing key (identity.signing_key_env), so it cannot check sandbox credentials',
  malformed_token: 'the password is not a Portcullis sandbox credential (issue one with portcullis sandbox issue)',
  bad_signature: 'the sandbox credential is not signed with this proxy’s key (altered, or signed with a retired key)',
  wrong_agent: 'the sandbox credential was issued for another agent or sandbox than the proxy user names',
  expired: 'the sandbox credential has expired; the platform must issue a new one',
  not_yet_valid: 'the sandbox credential is not valid yet (the issuer’s clock is ahead by more than a minute)',
  ttl_exceeds_max: 'the sandbox credential lives longer than identity.max_sandbox_ttl allows',
  revoked: 'the sandbox credential has been revoked',
  revocations_unknown:
    'the proxy has not yet read the list of revoked sandbox credentials (Redis unreachable since it started), so it accepts none until it has',
  key_retired: 'the key that signed the sandbox credential is no longer configured',
  source_not_allowed: 'the sandbox credential is not accepted from this address (source_cidrs of its agent)',
}

export function sandboxDenial(detail: SandboxDetail): DenyDecision {
  return { verdict: 'deny', reason: 'denied_auth_invalid', ruleId: null, detail, explanation: EXPLANATIONS[detail] }
}

type Outcome =
  | { readonly kind: 'agent'; readonly agent: CompiledAgent; readonly credential: SandboxCredential }
  | {
      readonly kind: 'denied'
      readonly decision: DenyDecision
      readonly claimedAgent: string | null
      readonly claimedSandbox?: SandboxFacts
    }

function refuse(detail: SandboxDetail, claimedAgent: string | null, claimedSandbox?: SandboxFacts): Outcome {
  return {
    kind: 'denied',
    decision: sandboxDenial(detail),
    claimedAgent,
    ...(claimedSandbox ? { claimedSandbox } : {}),
  }
}

/**
 * Order: there is a key; the token is signed by a key and canonical (checked before anything in it
 * is believed); the user names a template agent; the token is for the agent and sandbox the user
 * names; within its life and max_sandbox_ttl; not revoked; from the agent's source_cidrs when it has
 * any. Until the signature holds, a refusal says the same whatever agent the user names, so a client
 * without a credential cannot learn which ids exist or are templates (the record still names an
 * existing one). Once the signature holds, a refusal names the sandbox in its record.
 */
export function authenticateSandbox(
  policy: CompiledPolicy,
  user: string,
  token: string,
  srcIp: string,
  ctx: SandboxAuth | undefined,
  nowMs: number,
): Outcome {
  const named = parseSandboxUser(user)
  const agent = named === null ? undefined : policy.agents.get(named.agent)
  if (named === null) return refuse('bad_credentials', null)
  const claimedAgent = agent?.id ?? null
  if (ctx === undefined || ctx.keys.length === 0) return refuse('no_signing_key', claimedAgent)
  const check = verifySandboxToken(token, ctx.keys)
  if (check.kind === 'invalid') return refuse(check.detail, claimedAgent)
  if (agent === undefined) return refuse('bad_credentials', null)
  if (agent.sandboxes !== true) return refuse('not_a_sandbox_template', agent.id)
  const c = check.claims
  const expiresAt = new Date(c.exp * 1000).toISOString()
  const claimed: SandboxFacts = { sandbox: c.id, labels: c.labels, sandbox_expires_at: expiresAt }
  if (c.agent !== agent.id || c.id !== named.id || !SANDBOX_ID.test(named.id))
    return refuse('wrong_agent', agent.id, c.agent === agent.id ? claimed : undefined)
  const timing = checkTimes(c, nowMs, ctx.maxTtlMs)
  if (timing !== null) return refuse(timing, agent.id, claimed)
  if (!ctx.revocationsKnown()) return refuse('revocations_unknown', agent.id, claimed)
  if (ctx.isRevoked(c.id)) return refuse('revoked', agent.id, claimed)
  if (agent.sourceCidrs.length > 0 && !agent.sourceCidrs.some((cidr) => cidrContains(cidr, srcIp)))
    return refuse('source_not_allowed', agent.id, claimed)
  return {
    kind: 'agent',
    agent,
    credential: {
      kind: 'sandbox',
      id: c.id,
      labels: c.labels,
      expiresAtMs: c.exp * 1000,
      issuedAtMs: c.iat * 1000,
      expiresAt,
      keyId: check.keyId,
    },
  }
}

/**
 * Is an accepted sandbox credential still good now? Asked per request on a kept-alive connection
 * (whose authentication is remembered) and inside a CONNECT, and by the sweep that closes open
 * connections: expiry, revocation and key rotation apply without a new login.
 */
export function sandboxLapse(
  c: SandboxCredential,
  ctx: SandboxAuth | undefined,
  nowMs: number,
): 'expired' | 'revoked' | 'key_retired' | 'ttl_exceeds_max' | null {
  if (c.expiresAtMs <= nowMs) return 'expired'
  if (ctx === undefined) return 'key_retired'
  if (ctx.isRevoked(c.id)) return 'revoked'
  if (c.expiresAtMs - c.issuedAtMs > ctx.maxTtlMs) return 'ttl_exceeds_max'
  for (const k of ctx.keys) if (k.id === c.keyId) return null
  return 'key_retired'
}

/** The sandbox facts of a credential for records, or null for any other kind. */
export function sandboxFactsOf(c: { readonly kind: string } | undefined): SandboxFacts | null {
  if (c === undefined || c.kind !== 'sandbox') return null
  const s = c as SandboxCredential
  return { sandbox: s.id, labels: s.labels, sandbox_expires_at: s.expiresAt }
}

/**
 * The key the limiter counts under: the agent, or for a sandbox `<agent>+<id>`, so each sandbox has
 * the template's budget of its own (requests, concurrent connections, bytes per day), shared across
 * instances through Redis like any agent's.
 */
export function limiterKey(agent: string, credential: { readonly kind: string } | undefined): string {
  return credential !== undefined && credential.kind === 'sandbox'
    ? sandboxUser(agent, (credential as SandboxCredential).id)
    : agent
}

/** limiterKey from a record's facts: `<agent>+<sandbox>` when it has a sandbox. */
export function limiterKeyOf(agent: string, sandbox: string | undefined): string {
  return sandbox === undefined ? agent : sandboxUser(agent, sandbox)
}

/** The template agent of a limiter key (`ci+01J…` → `ci`). */
export function templateOf(key: string): string {
  return parseSandboxUser(key)?.agent ?? key
}
