import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { weakTokens } from '../identity/weak-tokens.js'
import { credentialVariables } from '../policy/compiled.js'

/** Each credential variable the policy reads that the environment does not set (for /healthz). */
export function missingCredentials(config: RuntimeConfig, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  for (const [name, rule] of credentialVariables(config.policy))
    if (env[name] === undefined || env[name] === '')
      out.push(
        `${rule}: environment variable ${name} (inject_headers or token_env) is not set; requests that need it are refused`,
      )
  return out
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
  for (const weak of weakTokens(config.policy))
    log.warn(
      { code: 'PC_WEAK_TOKEN', agent: weak.agent },
      `agent ${weak.agent}'s token is the well-known value '${weak.token}': anyone can use it; make one with portcullis token new`,
    )
}
