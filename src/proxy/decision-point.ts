import type { Bus } from '../telemetry/bus.js'
import { buildDecisionRecord, type DecisionFacts } from '../telemetry/events.js'
import type { Decision, DenyDecision, Mode } from '../policy/types.js'
import { applyMode } from '../policy/mode.js'
import type { DenialContext } from './respond.js'

/**
 * Every decision point ends here: apply the mode, publish exactly one decision
 * record, and tell the caller whether traffic may pass. Identity and
 * private-address denials are never softened by audit mode: without an agent
 * there is no policy to audit, and audit mode must never open the metadata
 * endpoint or other internal addresses.
 */
export function settle(bus: Bus, facts: DecisionFacts, decision: Decision): { pass: boolean } {
  const enforcedAlways = decision.verdict === 'deny' && isAlwaysEnforced(decision)
  const { pass, wouldDeny } = enforcedAlways ? { pass: false, wouldDeny: false } : applyMode(decision, facts.mode)
  bus.publish(buildDecisionRecord(facts, decision, wouldDeny))
  return { pass }
}

function isAlwaysEnforced(d: DenyDecision): boolean {
  switch (d.reason) {
    case 'denied_auth_required':
    case 'denied_auth_invalid':
    case 'denied_private_address':
    case 'denied_internal_error':
    case 'upstream_error':
      return true
    default:
      return false
  }
}

export function denialContext(facts: DecisionFacts, wantsJson: boolean): DenialContext {
  return {
    requestId: facts.id,
    agent: facts.agent,
    method: facts.method,
    host: facts.host,
    port: facts.port,
    scheme: facts.scheme,
    path: facts.path,
    wantsJson,
  }
}

export function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept)
}

export const internalError: DenyDecision = { verdict: 'deny', reason: 'denied_internal_error', ruleId: null }

export type { Mode }
