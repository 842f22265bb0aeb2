import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Credential } from '../identity/authenticate.js'
import type { Handling } from '../policy/decide.js'
import type { Decision, DenyDecision } from '../policy/types.js'
import { type DecisionFacts } from '../telemetry/events.js'
import type { ProxyDeps } from './deps.js'
import { openConnection } from './connection.js'
import { carryRequest } from './plain-exchange.js'
import { denialContext, failedAfter, settle } from './decision-point.js'
import { answerCut, maxForwardsAnswer, resolveInjections, sendContinue, VIA, type ForwardTarget } from './forward.js'
import { packageOfRequest, type GateAnswer } from './package-gate.js'
import { approvalOfRequest, approvedBy, type Approval } from '../policy/approvals.js'
import { redactSecrets } from './secret-scan.js'
import { asksMethodOverride, gateGithubApi } from './api-gate.js'
import { gatePush } from './push-gate.js'
import { guardIdle } from './read-body.js'
import type { RefusalAnswer } from '../git/report-status.js'
import type { RepoControl } from '../policy/compiled.js'
import { decodedReading } from '../net/url-path.js'
import type { InspectedRequest } from './inspect.js'
import { respondDenial, respondGitRefusal } from './respond.js'

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
 * A refusal here closes the connection (the body may be partly unread). `plain`: how the agent of a
 * plain-HTTP request on the proxy listener authenticated (its exchange gets a close record of its own
 * and is tracked while in flight); null inside a CONNECT, whose connection has both.
 */
export function passRequest(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  decision: Decision,
  handling: Handling,
  target: ForwardTarget,
  query: string,
  plain: Credential | null,
): void | Promise<void> {
  // Nothing to read or ask first (most requests): recorded and forwarded in this turn, with no promise
  // between the decision and the upstream write.
  if (handling.repo === null && !handling.inspectBody && handling.packages === null) {
    const ready = readied(deps, req, handling, target, { final: decision, recorded: facts })
    return conclude(deps, req, res, facts, decision, query, ready, undefined, plain)
  }
  // A rule reads the body or asks a registry first.
  return (async (): Promise<void> => {
    // Whatever body the proxy reads itself below must keep arriving. Only push and API rules and
    // inspect_body read one: other requests arm no timer (a socket timeout set and cleared per request
    // was ~1.5 µs of a forwarded request, bench/focus.ts d).
    const readsBody = handling.repo !== null || handling.inspectBody
    const lift = readsBody ? guardIdle(req, deps.config().upstream.idleTimeoutMs) : null
    let outcome: Readied
    try {
      outcome = readied(
        deps,
        req,
        handling,
        target,
        await readAndDecide(deps, req, res, facts, decision, handling, target, query),
      )
    } finally {
      lift?.()
    }
    const { forwardTo } = outcome
    let { final, recorded } = outcome
    let answer: GateAnswer | undefined
    const approval = final.verdict === 'allow' && handling.packages !== null ? packagesApproval(deps, facts) : undefined
    if (approval !== undefined && handling.packages !== null) {
      // The approval, not the policy rule, is what let this registry request past the package rules.
      final = approvedBy(approval)
      const pkg = packageOfRequest(handling.packages, forwardTo.requestTarget)
      if (pkg !== null) recorded = { ...recorded, package: pkg }
    } else if (final.verdict === 'allow' && handling.packages !== null) {
      const gate = await deps.packages.gate(
        req,
        forwardTo,
        handling.packages,
        handling.packagesRuleId,
        deps.config().upstream,
        approvalsOn(deps, facts),
      )
      if (gate.pkg !== undefined) recorded = { ...recorded, package: gate.pkg }
      if (gate.kind === 'deny') final = gate.decision
      else if (gate.kind === 'answer' && facts.mode === 'audit') {
        // Audit blocks nothing: the client's request goes upstream as it came and gets the registry's own
        // answer; the record says how many versions enforce would have withheld from it.
        const { withheld, ...pkg } = gate.pkg
        recorded = { ...recorded, package: withheld ? { ...pkg, would_withhold: withheld } : pkg }
      } else if (gate.kind === 'answer') answer = gate.answer
    }
    conclude(deps, req, res, facts, decision, query, { ...outcome, final, recorded }, answer, plain)
  })()
}

/** The one decision record, then the refusal, the proxy's own answer, or the request forwarded. */
function conclude(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  decision: Decision,
  query: string,
  { final, recorded, forwardTo, gitAnswer, release }: Readied,
  answer: GateAnswer | undefined,
  plain: Credential | null,
): void {
  const outcome = failedAfter(decision, final)
  const { pass } = settle(deps.bus, recorded, outcome)
  if (!pass) {
    void release?.()
    if (gitAnswer !== undefined && gitAnswer.kind === 'report')
      return respondGitRefusal(res, outcome as DenyDecision, recorded.id, gitAnswer)
    return respondDenial(res, outcome as DenyDecision, denialContext(recorded, req.headers, query), final !== decision)
  }
  if (release !== undefined) res.once('close', () => void release())
  const own = answer ?? maxForwardsAnswer(req)
  if (own !== undefined) return answerAndRecord(deps, req, res, recorded, own, plain)
  forwardAndRecord(deps, req, res, recorded, forwardTo, plain)
}

/**
 * An approval that names this request lets it past the package rules too: the way an admin lets a
 * hot fix through (a denied_package record approved like any other). It must name the path as a
 * decoding registry reads it too: a path-prefix approval of /a/-/ does not open /a/-/..%2F..%2Fb/….
 */
function packagesApproval(deps: ProxyDeps, facts: DecisionFacts): Approval | undefined {
  if (facts.agent === null || facts.path === null) return undefined
  const f = {
    agent: facts.agent,
    method: facts.method,
    host: facts.host,
    port: facts.port,
    path: facts.path,
    sandbox: facts.sandbox ?? null,
  }
  return approvalOfRequest(deps.approvals(), f, Date.now())
}

/**
 * This agent's active approvals on this registry host (for this sandbox, when one is sandbox-only):
 * an approved download's version is offered again in its package's metadata (package-gate.ts).
 */
function approvalsOn(deps: ProxyDeps, facts: DecisionFacts): readonly Approval[] {
  const list = facts.agent === null ? undefined : deps.approvals().get(facts.agent)
  if (list === undefined) return []
  const now = Date.now()
  return list.filter(
    (a) =>
      a.host === facts.host &&
      a.port === facts.port &&
      Date.parse(a.expires_at) > now &&
      (a.sandbox === undefined || a.sandbox === facts.sandbox),
  )
}

/** The proxy's own answer to an allowed request (rewritten registry metadata), recorded like a forwarded one. */
function answerAndRecord(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  answer: GateAnswer,
  plain: Credential | null,
): void {
  if (plain !== null) countAndRecordClose(deps, req, res, facts, plain)
  req.resume()
  if (res.headersSent || res.destroyed) return void res.destroy()
  const headers = [...answer.headers, 'via', VIA, 'connection', res.shouldKeepAlive ? 'keep-alive' : 'close']
  res.writeHead(answer.status, headers)
  res.end(req.method === 'HEAD' ? undefined : answer.body)
}

/** Gated, with the body folded into the target it goes to. */
interface Readied extends Omit<Gated, 'body' | 'replay'> {
  readonly forwardTo: ForwardTarget
}

/** What the body-reading rules made of a request. */
interface Gated {
  readonly final: Decision
  /** The facts the record carries (a caught secret redacted, the refs of a push). */
  readonly recorded: DecisionFacts
  /** The body, read whole by a rule, to send instead of the request stream. */
  readonly body?: Buffer
  /** The body, held elsewhere (a spilled push), to replay. */
  readonly replay?: ForwardTarget['replay']
  /** A refused push's report-status (git prints it), when the client asked for one. */
  readonly gitAnswer?: RefusalAnswer
  /** Frees what was held for the body (a spilled push), once the request is done. */
  readonly release?: () => Promise<void>
}

/**
 * What the body-reading rules ask for, in order: push rules (a git push, held and checked whole),
 * GitHub API write rules (the JSON body read and checked), inspect_body (the body scanned). Each runs
 * only while the request is still allowed; a body read by one is handed to the next.
 */
async function readAndDecide(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  decision: Decision,
  handling: Handling,
  target: ForwardTarget,
  query: string,
): Promise<Gated> {
  let final = decision
  let recorded = facts
  let body: Buffer | undefined
  let replay: ForwardTarget['replay']
  let gitAnswer: RefusalAnswer | undefined
  let release: (() => Promise<void>) | undefined
  const repo = handling.repo
  // The forge would act on another method than the one the repo rule decided (a GET that merges).
  if (final.verdict === 'allow' && repo !== null && asksMethodOverride(req, query))
    final = {
      verdict: 'deny',
      reason: 'denied_repo_write',
      ruleId: handling.repoRuleId,
      detail: 'method_override',
      explanation:
        'a method override (an X-HTTP-Method-Override header or a _method parameter) is not accepted by repo rules',
    }
  if (final.verdict === 'allow' && repo !== null && isPush(repo, facts)) {
    sendContinue(req, res)
    const gate = await gatePush(
      req,
      facts.agent ?? '',
      repo,
      handling.repoRuleId,
      deps.config().upstream.idleTimeoutMs,
      facts.mode === 'audit',
    )
    if (gate.kind === 'deny') final = gate.decision
    else {
      // Under inspect_body a ref name is scanned text like any other: the record keeps no credential in one.
      const refs = handling.inspectBody ? gate.refs.map((r) => ({ ...r, ref: redactSecrets(r.ref) })) : gate.refs
      recorded = { ...recorded, git: { refs } }
      if (gate.kind === 'refuse') {
        final = gate.decision
        gitAnswer = gate.answer(facts.id)
      } else {
        replay = { stream: gate.body, bytes: gate.bytes }
        release = gate.close
      }
    }
    // Audit mode: the push the gate would refuse goes upstream as it came (the record says would_deny).
    if (gate.kind !== 'pass' && gate.audit !== undefined) {
      replay = { stream: gate.audit.body, bytes: gate.audit.bytesRead }
      release = gate.audit.close
    }
  }
  if (final.verdict === 'allow' && repo !== null && (repo.part === 'api' || repo.part === 'graphql')) {
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
  // A push the push rules let through is held whole: inspect_body reads it from there (its ref
  // commands are text like any body; the pack is zlib, readable to no detector) under the same cap.
  if (final.verdict === 'allow' && handling.inspectBody) {
    sendContinue(req, res)
    const held = replay
    replay = undefined
    const seen = await deps.inspector.inspect(
      held !== undefined ? replayOf(req, held.stream) : body !== undefined ? replayOf(req, [body]) : req,
      target.requestTarget,
      facts.agent,
      facts.mode === 'audit',
    )
    // Audit mode blocks nothing: a body too large to scan goes upstream as it came (recorded would_deny).
    if (seen.kind === 'uninspectable' && seen.rest !== undefined) {
      replay = { stream: seen.rest.stream, bytes: seen.rest.bytesRead }
    }
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
      recorded = { ...recorded, path: recorded.path === null ? null : redactSecrets(recorded.path) }
    }
  }
  return {
    final,
    recorded,
    ...(body ? { body } : {}),
    ...(replay ? { replay } : {}),
    ...(gitAnswer ? { gitAnswer } : {}),
    ...(release ? { release } : {}),
  }
}

/** inject_headers (the last rule, which reads no body), and the target the request goes to. */
function readied(
  deps: ProxyDeps,
  req: IncomingMessage,
  handling: Handling,
  target: ForwardTarget,
  gated: Gated,
): Readied {
  let final = gated.final
  const { body, replay } = gated
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
  // The common case (nothing injected, no body read) forwards the target as it is: no copy per request.
  const forwardTo =
    inject === undefined && body === undefined && replay === undefined
      ? target
      : { ...target, ...(inject ? { inject } : {}), ...(body ? { body } : {}), ...(replay ? { replay } : {}) }
  return {
    final,
    recorded: gated.recorded,
    forwardTo,
    gitAnswer: gated.gitAnswer,
    release: gated.release,
  }
}

/**
 * A smart-HTTP push on a repo rule with access: write: `POST …/git-receive-pack`, as written or as a
 * decoding server reads the path (`…%2Fgit-receive-pack`, `…/git-receive-pack;x`).
 */
function isPush(repo: RepoControl, facts: DecisionFacts): boolean {
  if (repo.part !== 'smart_http' || repo.access !== 'write' || facts.method !== 'POST') return false
  const path = facts.path ?? ''
  return path.endsWith('/git-receive-pack') || (decodedReading(path) ?? '').endsWith('/git-receive-pack')
}

/** A body already read or held (a push), offered to the inspector as the request it came with. */
function replayOf(req: IncomingMessage, body: AsyncIterable<unknown> | readonly Buffer[]): InspectedRequest {
  return {
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    complete: true,
    async *[Symbol.asyncIterator]() {
      yield* body
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
  plain: Credential | null,
): void {
  // Intercepted connections get one close record per connection instead, and count bytes_per_day on
  // the connection (intercept.ts), so a long download inside one is counted while it runs.
  if (plain !== null) countAndRecordClose(deps, req, res, facts, plain)
  deps.forwarder.forward(req, res, target, (failure) => {
    if (failure === 'out_of_descriptors') deps.descriptors.note('dial')
    const d: DenyDecision = { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: failure }
    settle(deps.bus, facts, d)
    const q = target.requestTarget.indexOf('?')
    respondDenial(res, d, denialContext(facts, req.headers, q < 0 ? '' : target.requestTarget.slice(q + 1)), true)
  })
}

/** How far a plain-HTTP client connection's bytesRead has been counted to requests' close records. */
const kReadCounted = Symbol('portcullis.readCounted')
type CountedSocket = Socket & { [kReadCounted]?: number }

/**
 * Called as each plain-HTTP request arrives, before anything else listens on its answer: once the
 * answer is done, what the connection has read so far is this request's (counted by its close record
 * if it has one, passed over if it was refused: a refused request consumes nothing). First among the
 * answer's 'close' listeners but a close record's (prepended later), so it runs before the next
 * pipelined request, which waits on the same event (server.ts inTurn), starts counting.
 */
export function countReadUntilAnswered(res: ServerResponse): void {
  res.prependListener('close', markReadCounted)
}

/** One listener for every answer (no closure per request). */
function markReadCounted(this: ServerResponse): void {
  const socket: CountedSocket = this.req.socket
  socket[kReadCounted] = socket.bytesRead
}

/**
 * One close record per plain-HTTP request, with the bytes the client connection moved for it both ways
 * (the socket's own counters: no listener on the body, which must reach the upstream client untouched,
 * and nothing per chunk). Up is what the connection read since the answer before this one was done
 * (countReadUntilAnswered): node reads a head and the body behind it in one go, so bytesRead when the
 * request is seen already holds the body (an upload counted 0 towards bytes_per_day).
 * While its answer is in flight the exchange is tracked like a tunnel: a revoked or expired sandbox
 * credential, a reload that refuses the request, or the bytes budget cuts a long answer (a download,
 * an event stream), not only the next request.
 */
function countAndRecordClose(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  facts: DecisionFacts,
  credential: Credential,
): void {
  const socket: CountedSocket = req.socket
  const readAtStart = socket[kReadCounted] ?? 0
  const writtenAtStart = socket.bytesWritten
  const connection = openConnection(deps, {
    facts,
    credential,
    startedAtMs: Date.now(),
    bytes: { socket, upIsRead: true, upAt: readAtStart, downAt: writtenAtStart },
    track: null,
  })
  const done = carryRequest(deps, socket, facts, credential, connection)
  // Before countReadUntilAnswered moves the mark on (see there). 'close' comes once: no once-wrapper.
  res.prependListener('close', () => {
    done()
    const cut = answerCut(res)
    connection.finish(cut === undefined ? undefined : { upstream_error: cut })
  })
}
