import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Handling } from '../policy/decide.js'
import type { Decision, DenyDecision } from '../policy/types.js'
import { buildCloseRecord, type DecisionFacts } from '../telemetry/events.js'
import type { ProxyDeps } from './deps.js'
import { denialContext, settle } from './decision-point.js'
import { resolveInjections, sendContinue, type ForwardTarget } from './forward.js'
import { redactSecrets } from './secret-scan.js'
import { gateGithubApi } from './api-gate.js'
import type { InspectedRequest } from './inspect.js'
import { respondDenial } from './respond.js'

/**
 * The last lifecycle point of a request the policy lets through (plain, in a
 * tunnel, or intercepted): what the matching rules ask for (`handling`: every
 * allow rule that matches, not only the one that allowed) happens here, then
 * the one decision record, then forwarding.
 *  - inspect_body: the body is read whole and scanned with the target and
 *    headers (inspect.ts: bounded, off the event loop); a credential is
 *    `denied_secret_detected` (detail: which kind), and so is a body that
 *    cannot be read whole within the caps (detail `uninspectable`: fail closed).
 *  - inject_headers: added upstream, over TLS only, so a secret never crosses
 *    the network in clear, and never to TRACE; an unset variable is
 *    `denied_internal_error`.
 * A refusal here closes the connection (the body may be partly unread).
 */
export async function passRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  decision: Decision,
  handling: Handling,
  target: ForwardTarget,
  query: string,
  closeRecordPerRequest: boolean,
): Promise<void> {
  let final = decision
  let recorded = facts
  let body: Buffer | undefined
  const repo = handling.repo
  if (decision.verdict === 'allow' && repo !== null && (repo.part === 'api' || repo.part === 'graphql')) {
    sendContinue(req, res)
    const gate = await gateGithubApi(
      req,
      { agent: facts.agent ?? '', method: facts.method, path: facts.path ?? '/', query },
      repo,
      handling.repoRuleId,
    )
    if (gate.kind === 'deny') final = gate.decision
    else body = gate.body
  }
  if (final.verdict === 'allow' && handling.inspectBody) {
    sendContinue(req, res)
    const seen = await deps.inspector.inspect(
      body === undefined ? req : replayOf(req, body),
      target.requestTarget,
      facts.agent,
    )
    if (seen.kind === 'uninspectable') {
      // Fail closed: what cannot be read whole within the caps cannot be said to carry no secret.
      final = deny('denied_secret_detected', handling, 'uninspectable')
      deps.log.info(
        { code: 'PC_UNINSPECTABLE', request_id: facts.id, why: seen.detail },
        'inspect_body could not read this body within its caps; refused',
      )
    } else body = seen.body
    // Audit mode lets a detected secret through (would_deny); the body read for the scan goes with it.
    if (seen.kind === 'secret') {
      final = deny('denied_secret_detected', handling, seen.detector)
      // The record must not carry what the scan found (a key in the path would reach the log, the ring and Redis).
      recorded = { ...facts, path: facts.path === null ? null : redactSecrets(facts.path) }
    }
  }
  let inject: ForwardTarget['inject']
  // Never into TRACE: an origin that implements it echoes the request, injected credential included, to the sandbox.
  if (final.verdict === 'allow' && handling.injectHeaders.length > 0 && target.tls && req.method !== 'TRACE') {
    const resolved = resolveInjections(handling.injectHeaders, deps.env)
    if ('missing' in resolved) {
      deps.log.error(
        { code: 'PC_INJECT_SECRET_MISSING', rule: handling.ruleId, env: resolved.missing },
        'inject_headers names an environment variable that is not set; requests the rule allows fail closed',
      )
      final = {
        ...deny('denied_internal_error', handling, 'inject_secret_missing'),
        explanation: `the credential this request needs comes from the proxy's environment variable ${resolved.missing}, which is not set there, so the request is refused rather than sent without it`,
      }
    } else {
      inject = resolved
    }
  }
  const { pass } = settle(deps.bus, recorded, final)
  if (!pass)
    return respondDenial(res, final as DenyDecision, denialContext(facts, req.headers, query), final !== decision)
  // The common case (no injection, no inspected body) forwards the target as it is: no copy per request.
  const forwardTo =
    inject === undefined && body === undefined
      ? target
      : { ...target, ...(inject ? { inject } : {}), ...(body ? { body } : {}) }
  forwardAndRecord(deps, req, res, recorded, forwardTo, closeRecordPerRequest)
}

/** A body already read, offered to the inspector as the request it came with. */
function replayOf(req: IncomingMessage, body: Buffer): InspectedRequest {
  return {
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    complete: true,
    async *[Symbol.asyncIterator]() {
      yield body
    },
  }
}

function deny(
  reason: 'denied_secret_detected' | 'denied_internal_error',
  handling: Handling,
  detail: string,
): DenyDecision {
  return { verdict: 'deny', reason, ruleId: handling.ruleId, detail }
}

export function forwardAndRecord(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  target: Parameters<ProxyDeps['forwarder']['forward']>[2],
  closeRecordPerRequest = true,
): void {
  // Intercepted connections get one close record per connection instead, and count bytes_per_day on
  // the connection (intercept.ts), so a long download inside one is counted while it runs.
  if (closeRecordPerRequest) countAndRecordClose(deps, req, res, facts, target.body?.length ?? 0)
  deps.forwarder.forward(req, res, target, (failure) => {
    if (failure === 'out_of_descriptors') deps.descriptors.note('dial')
    const d: DenyDecision = { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: failure }
    settle(deps.bus, facts, d)
    const q = target.requestTarget.indexOf('?')
    respondDenial(res, d, denialContext(facts, req.headers, q < 0 ? '' : target.requestTarget.slice(q + 1)), true)
  })
}

/**
 * One close record per plain-HTTP request, with its body bytes both ways (counting only: the bodies
 * still flow through http-proxy untouched); `bodyRead` bytes were already read for inspection.
 */
function countAndRecordClose(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  bodyRead: number,
): void {
  const startedAt = Date.now()
  let bytesUp = bodyRead
  let bytesDown = 0
  req.on('data', (c: Buffer) => (bytesUp += c.length))
  const write = res.write.bind(res)
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk) bytesDown += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof res.write
  res.once('close', () => {
    if (facts.agent !== null) deps.limiter.addBytes(facts.agent, bytesUp + bytesDown)
    deps.bus.publish(buildCloseRecord(facts, bytesUp, bytesDown, startedAt))
  })
}
