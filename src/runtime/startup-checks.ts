import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { weakTokens } from '../identity/weak-tokens.js'
import { readSandboxKeys } from '../identity/sandbox-issue.js'
import { credentialVariables } from '../policy/compiled.js'

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
  for (const weak of weakTokens(config.policy))
    log.warn(
      { code: 'PC_WEAK_TOKEN', agent: weak.agent },
      `agent ${weak.agent}'s token is the well-known value '${weak.token}': anyone can use it; make one with portcullis token new`,
    )
}
