import { createHash, hash, timingSafeEqual } from 'node:crypto'
import type { CompiledPolicy } from '../policy/compiled.js'
import type { CompiledAgent, DenyDecision } from '../policy/types.js'
import { cidrContains } from '../net/host.js'
import { parseProxyAuthorization } from './proxy-auth.js'
import { authenticateSandbox, type SandboxAuth, type SandboxCredential, type SandboxFacts } from './sandbox-auth.js'

/**
 * How an agent proved who it is, kept with an open connection so a reload can ask again
 * (a rotated token or a narrowed source_cidrs closes it). The token itself is never kept: only its
 * sha256, which is what the config holds anyway. A sandbox credential (SPEC §9) keeps its claims
 * (id, labels, expiry) and which key signed it, so expiry, revocation and key rotation close it.
 */
export type Credential =
  { readonly kind: 'token'; readonly sha256: Buffer } | { readonly kind: 'source' } | SandboxCredential

export type Identity =
  | { readonly kind: 'agent'; readonly agent: CompiledAgent; readonly credential: Credential }
  | {
      readonly kind: 'denied'
      readonly decision: DenyDecision
      readonly claimedAgent: string | null
      /** A genuine (signed) sandbox credential refused as expired, revoked, …: whose it was. */
      readonly claimedSandbox?: SandboxFacts
    }

// Compared against when the claimed agent does not exist, so an unknown id costs the same time as a wrong token.
const DUMMY_HASH = createHash('sha256').update('portcullis:no-such-agent').digest()

function inSources(agent: CompiledAgent, srcIp: string): boolean {
  for (const c of agent.sourceCidrs) if (cidrContains(c, srcIp)) return true
  return false
}

/**
 * Who is asking. Order: a Proxy-Authorization header always wins and must be
 * right (a wrong token never falls back to source matching); without one, the
 * first agent (config order) whose source_cidrs hold the client address.
 * An agent that has a token and source_cidrs accepts the token only from those sources.
 */
export function authenticate(
  policy: CompiledPolicy,
  header: string | undefined,
  srcIp: string,
  sandboxes?: SandboxAuth,
  nowMs: number = Date.now(),
): Identity {
  const auth = parseProxyAuthorization(header)
  if (auth.kind === 'malformed') {
    return denied('denied_auth_invalid', 'malformed_credentials', null)
  }
  // `<agent>+<sandbox id>`: a sandbox credential (agent ids cannot contain `+`).
  if (auth.kind === 'basic' && auth.user.includes('+'))
    return authenticateSandbox(policy, auth.user, auth.password, srcIp, sandboxes, nowMs)
  if (auth.kind === 'basic') {
    const agent = policy.agents.get(auth.user)
    // One-shot hash: no Hash object per request (this runs on every request and every CONNECT).
    const given = hash('sha256', auth.password, 'buffer')
    const expected = agent?.tokenSha256 ?? DUMMY_HASH
    const match = timingSafeEqual(given, expected) && agent !== undefined && agent.tokenSha256 !== null
    if (!match || !agent) return denied('denied_auth_invalid', 'bad_credentials', agent ? agent.id : null)
    if (agent.sourceCidrs.length > 0 && !inSources(agent, srcIp))
      return denied('denied_auth_invalid', 'source_not_allowed', agent.id)
    return { kind: 'agent', agent, credential: { kind: 'token', sha256: given } }
  }
  const bySource = sourceAgent(policy, srcIp)
  return bySource
    ? { kind: 'agent', agent: bySource, credential: SOURCE }
    : denied('denied_auth_required', 'no_credentials', null)
}

const SOURCE: Credential = Object.freeze({ kind: 'source' })

/**
 * The agent identified by address alone. A sandbox template is never one: its source_cidrs only
 * narrow where its sandboxes' credentials are accepted, or a sandbox that dropped its revoked
 * credential would go on under the template's policy, as no sandbox.
 */
function sourceAgent(policy: CompiledPolicy, srcIp: string): CompiledAgent | undefined {
  for (const agent of policy.sourceAgents) {
    if (agent.tokenSha256 === null && agent.sandboxes !== true && inSources(agent, srcIp)) return agent
  }
  return undefined
}

/** Would `credential` from `srcIp` still authenticate as `agentId` under `policy` (after a reload)? */
export function stillAuthenticates(
  policy: CompiledPolicy,
  agentId: string,
  credential: Credential,
  srcIp: string,
): boolean {
  if (credential.kind === 'source') return sourceAgent(policy, srcIp)?.id === agentId
  const agent = policy.agents.get(agentId)
  // Expiry, revocation and a retired key are the sandbox sweep's (runtime/live-sandboxes.ts): they need no reload.
  if (credential.kind === 'sandbox')
    return agent?.sandboxes === true && (agent.sourceCidrs.length === 0 || inSources(agent, srcIp))
  if (!agent || agent.tokenSha256 === null || !timingSafeEqual(credential.sha256, agent.tokenSha256)) return false
  return agent.sourceCidrs.length === 0 || inSources(agent, srcIp)
}

function denied(
  reason: 'denied_auth_invalid' | 'denied_auth_required',
  detail: string,
  claimedAgent: string | null,
): Identity {
  return { kind: 'denied', decision: { verdict: 'deny', reason, ruleId: null, detail }, claimedAgent }
}
