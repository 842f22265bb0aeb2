import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { Bus } from '../telemetry/bus.js'
import { buildDecisionRecord, type DecisionFacts } from '../telemetry/events.js'
import type { AgentLimits, Decision, DenyDecision, Mode } from '../policy/types.js'
import type { Limiter, Release } from '../limits/limiter.js'
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

/** Will traffic pass: allowed, or a denial that audit mode lets through (never the always-enforced ones). */
export function passes(decision: Decision, mode: Mode): boolean {
  return decision.verdict === 'allow' || (mode === 'audit' && !isAlwaysEnforced(decision))
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

const noRelease: Release = () => undefined

/** A client connection's concurrent_connections slot, held from its first request to its close. */
const socketSlots = new WeakMap<Socket, { readonly agent: string; readonly release: Release }>()

/**
 * The slot a kept-alive client connection holds for its agent: taken at its first passing request,
 * kept while it is open (idle or not: each one holds a socket and a descriptor), given back at close.
 * A connection that later authenticates as another agent moves its slot to that agent.
 */
function holdSocketSlot(limiter: Limiter, socket: Socket, agentId: string, limits: AgentLimits): DenyDecision | null {
  const held = socketSlots.get(socket)
  if (held?.agent === agentId) return null
  held?.release()
  socketSlots.delete(socket)
  const slot = limiter.acquireConnection(agentId, limits)
  if (typeof slot !== 'function') return slot
  socketSlots.set(socket, { agent: agentId, release: slot })
  socket.once('close', slot)
  return null
}

/**
 * The agent's rate limits, applied only to traffic that would pass (allowed,
 * or let through by audit mode); a policy denial stays the reason and
 * consumes nothing. `request` takes one from requests_per_minute (and checks
 * bytes_per_day); `connection` holds a concurrent_connections slot until the
 * returned release is called, or, given the client socket, until that socket closes.
 * Returns the final decision.
 */
export function applyLimits(
  limiter: Limiter,
  agentId: string,
  limits: AgentLimits,
  decision: Decision,
  mode: Mode,
  use: { readonly request: boolean; readonly connection: boolean | Socket },
): { decision: Decision; release: Release } {
  if (!passes(decision, mode)) return { decision, release: noRelease }
  let release = noRelease
  if (use.connection === true) {
    const slot = limiter.acquireConnection(agentId, limits)
    if (typeof slot !== 'function')
      return { decision: decision.verdict === 'allow' ? slot : decision, release: noRelease }
    release = slot
  } else if (use.connection !== false) {
    const refused = holdSocketSlot(limiter, use.connection, agentId, limits)
    if (refused !== null) return { decision: decision.verdict === 'allow' ? refused : decision, release: noRelease }
  }
  if (use.request) {
    const admission = limiter.admitRequest(agentId, limits)
    if ('verdict' in admission) {
      release()
      return { decision: decision.verdict === 'allow' ? admission : decision, release: noRelease }
    }
  }
  return { decision, release }
}

/** The facts a denial body shows; `query` is the raw query string (shown, never matched). */
export function denialContext(facts: DecisionFacts, headers: IncomingHttpHeaders, query = ''): DenialContext {
  return {
    requestId: facts.id,
    agent: facts.agent,
    method: facts.method,
    host: facts.host,
    port: facts.port,
    scheme: facts.scheme,
    path: facts.path,
    query,
    wantsJson: wantsJson(headers),
    ...(facts.package === undefined ? {} : { package: { name: facts.package.name, version: facts.package.version } }),
  }
}

/**
 * JSON for clients that ask for it, and for npm, which shows a JSON body's
 * `error` field to the user but hides a text body (its tarball requests send
 * `Accept: *\/*`).
 */
export function wantsJson(headers: IncomingHttpHeaders): boolean {
  const accept = headers.accept
  // application/json, and the structured-syntax kind (application/vnd.github+json, application/problem+json).
  if (accept !== undefined && /\bapplication\/(?:[\w.-]+\+)?json\b/i.test(accept)) return true
  const ua = headers['user-agent']
  return ua !== undefined && /^npm\//.test(ua)
}

/**
 * An upstream failure recorded in place of an allow (DNS, the dial, a gate's fetch): the record names
 * the rule or approval that let the request through, as every decision it makes does (SPEC §3), so
 * `replay` and analysts see what was allowed, not a request no rule answered.
 */
export function failedAfter<D extends Decision>(allowed: Decision, outcome: D): D {
  return allowed.verdict === 'allow' && outcome.reason === 'upstream_error' && outcome.ruleId === null
    ? { ...outcome, ruleId: allowed.ruleId }
    : outcome
}

export const internalError: DenyDecision = { verdict: 'deny', reason: 'denied_internal_error', ruleId: null }

export type { Mode }
