import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { weakTokens } from '../identity/weak-tokens.js'
import { isWildcardHost, LOOPBACK_GUESS, readSandboxKeys } from '../identity/sandbox-issue.js'
import { credentialVariables, listRules, needsInside } from '../policy/compiled.js'
import { cidrContains, type Cidr } from '../net/host.js'

/** Each credential variable the policy reads that the environment does not set (for /healthz). */
export function missingCredentials(config: RuntimeConfig, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  for (const [name, rule] of credentialVariables(config.policy))
    if (env[name] === undefined || env[name] === '')
      out.push(
        `${rule}: environment variable ${name} (inject_headers or token_env) is not set; requests that need it are refused`,
      )
  for (const problem of sandboxKeyProblems(config, env))
    out.push(`identity: ${problem}; sandbox credentials signed with that key are refused`)
  return out
}

/** With sandbox templates in the policy: what is wrong with the signing keys (SPEC §9). */
export function sandboxKeyProblems(config: RuntimeConfig, env: NodeJS.ProcessEnv): readonly string[] {
  for (const agent of config.policy.agents.values())
    if (agent.sandboxes === true) return readSandboxKeys(config.identity, env).problems
  return []
}

/**
 * What an operator should hear about a policy as it takes effect (at start and on each reload): a
 * credential variable that is not set (requests that need it fail closed), and agents whose token is a
 * well-known value (as good as none).
 */
export function reportPolicyProblems(config: RuntimeConfig, env: NodeJS.ProcessEnv, log: Logger): void {
  for (const [name, rule] of credentialVariables(config.policy))
    if (env[name] === undefined || env[name] === '')
      log.error(
        { code: 'PC_INJECT_SECRET_MISSING', env: name, rule },
        'a credential variable (inject_headers or token_env) is not set: requests that need it are refused',
      )
  for (const problem of sandboxKeyProblems(config, env))
    log.error(
      { code: 'PC_SANDBOX_KEY_UNUSABLE', problem },
      `a sandbox signing key is unusable (${problem}); credentials signed with it are refused`,
    )
  for (const w of policyWarnings(config)) log.warn({ code: w.code, ...(w.agent ? { agent: w.agent } : {}) }, w.message)
}

export interface PolicyWarning {
  readonly code:
    'PC_NO_AGENTS' | 'PC_SOURCE_OVERLAP' | 'PC_WEAK_TOKEN' | 'PC_NEEDS_INTERCEPTION' | 'PC_SANDBOX_PROXY_GUESSED'
  readonly message: string
  readonly agent?: string
}

/**
 * A policy that is valid but will not do what its author likely meant (printed by `check`, logged at
 * start): no agent at all (an empty file; every request is refused), a token that is a well-known value
 * (as good as none), and agents whose source_cidrs overlap (a client there is the first of them in
 * config order, never the others).
 */
export function policyWarnings(config: RuntimeConfig): PolicyWarning[] {
  const agents = [...config.policy.agents.values()]
  if (agents.length === 0)
    return [{ code: 'PC_NO_AGENTS', message: 'no agents: every request is refused (407); add agents: to the config' }]
  const out: PolicyWarning[] = weakTokens(config.policy).map((weak) => ({
    code: 'PC_WEAK_TOKEN',
    agent: weak.agent,
    message: `agent ${weak.agent}'s token is the well-known value '${weak.token}': anyone can use it; make one with portcullis token new`,
  }))
  // Only agents without a token are chosen by source; one with a token uses its CIDRs to restrict where it may log in.
  const bySource = agents.filter((a) => a.sourceCidrs.length > 0 && a.tokenSha256 === null && a.sandboxes !== true)
  for (let i = 0; i < bySource.length; i++)
    for (let j = i + 1; j < bySource.length; j++) {
      const [a, b] = [bySource[i], bySource[j]] as [(typeof agents)[number], (typeof agents)[number]]
      for (const x of a.sourceCidrs)
        for (const y of b.sourceCidrs)
          if (cidrsOverlap(x, y))
            out.push({
              code: 'PC_SOURCE_OVERLAP',
              message: `agents ${a.id} (${x.text}) and ${b.id} (${y.text}) both match some sources: a client there is ${a.id}, the first in config order, unless it sends credentials`,
            })
    }
  if (
    agents.some((a) => a.sandboxes === true) &&
    config.identity.sandboxProxy === null &&
    isWildcardHost(config.listen.host)
  )
    out.push({ code: 'PC_SANDBOX_PROXY_GUESSED', message: `sandbox credentials: ${LOOPBACK_GUESS}` })
  if (config.policy.intercept === 'never') {
    // Such a rule cannot be kept over HTTPS without seeing inside: every HTTPS request it governs fails closed.
    const seen = new Set<string>()
    for (const indexes of config.policy.rules.values())
      for (const index of indexes)
        for (const rule of listRules(index))
          if (rule.effect === 'allow' && needsInside(rule) && !seen.has(rule.id)) {
            seen.add(rule.id)
            out.push({
              code: 'PC_NEEDS_INTERCEPTION',
              message: `rule ${rule.id} limits methods or paths, or inspects or injects, which needs interception, but tls.intercept is never: HTTPS requests it governs are refused (needs_interception)`,
            })
          }
  }
  return out
}

/** CIDRs are nested or apart: they overlap when the wider one holds the other's network address. */
function cidrsOverlap(x: Cidr, y: Cidr): boolean {
  if (x.kind !== y.kind) return false
  const [wide, narrow] = x.prefix <= y.prefix ? [x, y] : [y, x]
  return cidrContains(wide, ipText(narrow))
}

function ipText(c: Cidr): string {
  if (c.kind === 'ipv4') return [...c.bytes].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((c.bytes[i] ?? 0) << 8) | (c.bytes[i + 1] ?? 0)).toString(16))
  return groups.join(':')
}
