/**
 * The policy decision. PURE: facts in, Decision out; no I/O, no clock.
 *
 * Evaluation order (decideRequest):
 *  1. The agent must exist in the compiled policy; otherwise fail closed with
 *     `denied_internal_error` (callers authenticate first, so this is a bug).
 *  2. Collect the agent's rules whose host pattern matches (its own rules, then
 *     its groups'; exact Map, `*.domain` per parent label, CIDRs for IP hosts).
 *  3. A deny rule that matches port, method and path denies (`denied_by_rule`)
 *     whatever the allow rules say: a matching deny beats any allow.
 *  4. An allow rule that matches port, method and path allows (`allowed`).
 *  5. Otherwise report the most specific failure among the allow rules that
 *     matched the host: path (`denied_path`) over method (`denied_method`)
 *     over port (`denied_port`); the earliest rule in config order on a tie.
 *  6. No rule matched the host: `denied_no_rule`, rule id null (default deny).
 *  7. A path with `%2F`, `%5C` or `;params` is decided twice: as written and as
 *     a server that decodes them reads it (net/url-path.decodedReading). Either
 *     reading's denial is the answer (`/public/..%2Fsecret` is `/secret` to
 *     such a server); a reading that is malformed is `denied_path`.
 *  Rules expanded from a repo rule (`github:`, `git:`) compare the path with owner and repo names
 *  folded to lower case (git-rules.repoCasePath), as forges route them: allow and deny alike.
 *  Ports are the rule's `ports`, else upstream.ports for an allow rule and every port for a deny
 *  rule (`deny: [{host: X}]` refuses X on 8080 too, where some allow rule opens that port).
 *
 * decideConnect sees only agent, host and port, and also chooses how the
 * tunnel is handled:
 *  1-2. As above.
 *  3. A deny rule without methods/paths matching host and port denies the
 *     CONNECT outright. A deny rule with methods/paths forces interception
 *     (it can only be enforced on the inner requests).
 *  4. Each allow rule matching host and port: if neither it, a deny-inside
 *     rule nor `tls.intercept: always` requires seeing inside, it can tunnel.
 *     If something requires seeing inside and interception is possible (not
 *     `tls.intercept: never`, not the rule's `intercept: never`), it can
 *     intercept. If inside is required but impossible, the rule cannot allow
 *     the CONNECT: fail closed, with the reason the rule would give
 *     (`denied_method` / `denied_path`, or `denied_internal_error` for an
 *     inject/inspect-only rule; `denied_by_rule` with the deny rule's id when
 *     it is a deny-inside rule that could not be enforced); detail
 *     `needs_interception`. `intercept: never` on a host-level rule under
 *     `tls.intercept: always` tunnels.
 *  5. Any rule that can intercept → allow via `intercept` (its id), so the
 *     inner requests are decided by decideRequest; else any rule that can
 *     tunnel → allow via `tunnel`; else the most specific failure as above.
 */
import {
  collectHostRules,
  needsInside,
  strictestPackages,
  type CompiledPolicy,
  type CompiledRule,
  type InjectHeader,
  type PackageControl,
  type RepoControl,
  type RuleIndex,
} from './compiled.js'
import { isPushPath, repoCasePath } from './git-rules.js'
import { decodedReading } from '../net/url-path.js'
import { cidrContainsBytes, ipBytes, isIpLiteral } from '../net/host.js'
import { matchPathPattern, MAX_MATCHED_PATH_BYTES } from './path-pattern.js'
import type { DenyReason } from './reasons.js'
import type { ConnectDecision, ConnectFacts, Decision, DenyDecision, RequestFacts, RuleId } from './types.js'

/** How far an allow rule got before it failed; higher is more specific. */
const RANK_PORT = 0
const RANK_METHOD = 1
const RANK_PATH = 2
const RANK_UNENFORCEABLE_DENY = 3
const FULL_MATCH = 3
const REASON_BY_RANK: readonly DenyReason[] = ['denied_port', 'denied_method', 'denied_path', 'denied_by_rule']

const INTERNAL: DenyDecision = Object.freeze({
  verdict: 'deny',
  reason: 'denied_internal_error',
  ruleId: null,
  detail: 'unknown_agent',
})
const NO_RULE: DenyDecision = Object.freeze({ verdict: 'deny', reason: 'denied_no_rule', ruleId: null })

/**
 * What the rules that match a request ask the proxy to do with it besides letting it through. Every
 * allow rule that matches counts, not only the one that allowed: a broader rule for the same host
 * (another group's `*.example.com`) must not switch off another rule's inspection or injection.
 * `ruleId` names the first rule that asked (a refusal on its account carries it).
 */
export interface Handling {
  readonly inspectBody: boolean
  /** Headers to add upstream; on a name two rules give, the earlier rule's. */
  readonly injectHeaders: readonly InjectHeader[]
  /** The earliest matching repo rule's controls (push rules, API write rules), with its id. */
  readonly repo: RepoControl | null
  readonly repoRuleId: RuleId | null
  /** Every matching registry rule's package guard (SPEC §11) as one, strictest wins; the earliest rule's id. */
  readonly packages: PackageControl | null
  readonly packagesRuleId: RuleId | null
  readonly ruleId: RuleId | null
}

export const NO_HANDLING: Handling = Object.freeze({
  inspectBody: false,
  injectHeaders: [],
  repo: null,
  repoRuleId: null,
  packages: null,
  packagesRuleId: null,
  ruleId: null,
})

/**
 * The request decision; when allowed, the rule that allowed it and the handling every matching
 * allow rule asks for. When denied, `handling` is that of the allow rules matching host and port
 * (what applies if an approval lets the request through).
 */
export interface RequestMatch {
  readonly decision: Decision
  readonly rule: CompiledRule | null
  readonly handling: Handling
}

/** Paths longer than this are refused before any pattern sees them (path-pattern.ts MAX_MATCHED_PATH_BYTES). */
const PATH_TOO_LONG: DenyDecision = Object.freeze({
  verdict: 'deny',
  reason: 'denied_path',
  ruleId: null,
  detail: 'path_too_long',
})

export function decideRequest(policy: CompiledPolicy, facts: RequestFacts): Decision {
  return matchRequest(policy, facts).decision
}

// Reused candidate list: decisions are synchronous and never re-entered, so one
// scratch array per module avoids an allocation per decision.
const scratch: CompiledRule[] = []

function candidates(indexes: Parameters<typeof collectHostRules>[0], host: string): CompiledRule[] {
  scratch.length = 0
  collectHostRules(indexes, host, scratch)
  return scratch
}

const AMBIGUOUS_PATH: DenyDecision = Object.freeze({
  verdict: 'deny',
  reason: 'denied_path',
  ruleId: null,
  detail: 'ambiguous_path',
})

export function matchRequest(policy: CompiledPolicy, facts: RequestFacts): RequestMatch {
  if (facts.path.length > MAX_MATCHED_PATH_BYTES) return { decision: PATH_TOO_LONG, rule: null, handling: NO_HANDLING }
  const written = matchReading(policy, facts)
  const decoded = decodedReading(facts.path)
  if (decoded === facts.path || written.decision.verdict === 'deny') return written
  if (decoded === null) return { decision: AMBIGUOUS_PATH, rule: null, handling: NO_HANDLING }
  const other = matchReading(policy, { ...facts, path: decoded })
  if (other.decision.verdict === 'deny') return other
  // Both readings allowed, but by rules that handle the request differently (another repo's push rules
  // or credential, another registry guard): which one the server reads is unknowable, so neither is taken.
  return sameHandling(written.handling, other.handling) ? written : { ...AMBIGUOUS_REQUEST }
}

const AMBIGUOUS_REQUEST: RequestMatch = Object.freeze({ decision: AMBIGUOUS_PATH, rule: null, handling: NO_HANDLING })

function sameHandling(a: Handling, b: Handling): boolean {
  return (
    a.repoRuleId === b.repoRuleId &&
    a.packagesRuleId === b.packagesRuleId &&
    a.ruleId === b.ruleId &&
    a.inspectBody === b.inspectBody &&
    a.injectHeaders.length === b.injectHeaders.length &&
    a.injectHeaders.every((h, i) => h === b.injectHeaders[i])
  )
}

/**
 * What applies to a request an approval lets through (no rule allowed it): the body inspection and
 * package guard of every allow rule on its host and port (as matchRequest gives them), but no rule's
 * credentials, and the push and API rules of the repo rule whose paths name the request's repository
 * in one of its readings (`readings`: as written, and as a decoding server reads it), not of whichever
 * repo rule on the host comes first. Null repo when no rule names it.
 */
export function approvedHandling(
  policy: CompiledPolicy,
  facts: RequestFacts,
  readings: readonly string[],
  asked: Handling,
): Handling {
  const indexes = policy.rules.get(facts.agent)
  let repo: CompiledRule | null = null
  if (indexes !== undefined)
    for (const rule of candidates(indexes, facts.host)) {
      if (rule.effect !== 'allow' || rule.repo === null || !coversPort(policy, rule, facts.port)) continue
      const paths = rule.paths
      if (
        paths === null ||
        readings.some((path) => paths.some((p) => matchPathPattern(p, repoCasePath(path), facts.query)))
      )
        repo = earlier(repo, rule)
    }
  scratch.length = 0
  return {
    ...asked,
    injectHeaders: [],
    repo: repo?.repo ?? null,
    repoRuleId: repo?.id ?? null,
  }
}

function matchReading(policy: CompiledPolicy, facts: RequestFacts): RequestMatch {
  const indexes = policy.rules.get(facts.agent)
  if (indexes === undefined || !policy.agents.has(facts.agent))
    return { decision: INTERNAL, rule: null, handling: NO_HANDLING }
  let deny: CompiledRule | null = null
  let allow: CompiledRule | null = null
  let fail: CompiledRule | null = null
  let failRank = -1
  // Rules asking for handling, in a list only when there are any (the common request allocates nothing).
  let asking: CompiledRule[] | null = null
  let askingFull = false
  const rules = candidates(indexes, facts.host)
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as CompiledRule
    const stage = requestStage(policy, rule, facts)
    if (
      rule.effect === 'allow' &&
      stage > RANK_PORT &&
      (rule.inspectBody || rule.injectHeaders.length > 0 || rule.repo !== null || rule.packages !== null)
    ) {
      ;(asking ??= []).push(rule)
      if (stage === FULL_MATCH) askingFull = true
    }
    if (stage === FULL_MATCH) {
      if (rule.effect === 'deny') deny = earlier(deny, rule)
      else allow = earlier(allow, rule)
    } else if (
      rule.effect === 'allow' &&
      (stage > failRank || (stage === failRank && fail !== null && rule.ordinal < fail.ordinal))
    ) {
      fail = rule
      failRank = stage
    }
  }
  scratch.length = 0
  if (deny !== null) return { decision: denyWith('denied_by_rule', deny), rule: null, handling: NO_HANDLING }
  if (allow !== null) {
    const handling = askingFull ? handlingOf(asking ?? [], policy, facts, true) : NO_HANDLING
    return { decision: { verdict: 'allow', reason: 'allowed', ruleId: allow.id }, rule: allow, handling }
  }
  const handling = asking === null ? NO_HANDLING : handlingOf(asking, policy, facts, false)
  if (fail !== null) {
    // A push to a repo a rule opens read-only: say what would allow it, not just "path".
    const readOnly = failRank === RANK_PATH ? readOnlyRepoRule(policy, indexes, facts) : null
    if (readOnly !== null)
      return { decision: denyWith('denied_repo_write', readOnly, 'read_only'), rule: null, handling }
    return { decision: denyWith(REASON_BY_RANK[failRank] ?? 'denied_internal_error', fail), rule: null, handling }
  }
  return { decision: NO_RULE, rule: null, handling }
}

/** The union of what `rules` ask for: those fully matching the request (`full`), else all given (host and port matched). */
function handlingOf(
  rules: readonly CompiledRule[],
  policy: CompiledPolicy,
  facts: RequestFacts,
  full: boolean,
): Handling {
  let inspectBody = false
  let first: CompiledRule | null = null
  let repo: CompiledRule | null = null
  let packages: PackageControl | null = null
  let packagesRuleId: RuleId | null = null
  const inject = new Map<string, InjectHeader>()
  const ordered = [...rules].sort((a, b) => a.ordinal - b.ordinal)
  // A GraphQL mutation names no repository the proxy can read (only node ids): a mutation passes only if
  // every repo rule opening GraphQL for this agent lists it, whichever of them comes first.
  let graphql: string[] | null = null
  for (const rule of ordered) {
    if (full && requestStage(policy, rule, facts) !== FULL_MATCH) continue
    if (rule.repo?.part === 'graphql') {
      const listed = rule.repo.api?.graphqlMutations ?? []
      graphql = graphql === null ? [...listed] : graphql.filter((m) => listed.includes(m))
    }
    if (rule.repo !== null) repo ??= rule
    if (rule.packages !== null) {
      packages = packages === null ? rule.packages : strictestPackages(packages, rule.packages)
      packagesRuleId ??= rule.id
    }
    if (!rule.inspectBody && rule.injectHeaders.length === 0) continue
    first ??= rule
    if (rule.inspectBody) inspectBody = true
    for (const h of rule.injectHeaders) if (!inject.has(h.name.toLowerCase())) inject.set(h.name.toLowerCase(), h)
  }
  const control = repo?.repo ?? null
  return {
    inspectBody,
    injectHeaders: [...inject.values()],
    repo:
      control?.part === 'graphql' && control.api !== null && graphql !== null
        ? { ...control, api: { ...control.api, graphqlMutations: graphql } }
        : control,
    repoRuleId: repo?.id ?? null,
    packages,
    packagesRuleId,
    ruleId: first?.id ?? null,
  }
}

/** RANK_PORT..RANK_PATH: the first check the rule failed; FULL_MATCH when none failed. */
/**
 * For a push (`git-receive-pack`): the earliest rule that opens the same repo read-only, i.e. that
 * allows the same request as a fetch (`git-upload-pack`); null when none does (then the repo is not
 * opened at all, and the refusal is the path's). Asked only for refused requests.
 */
function readOnlyRepoRule(
  policy: CompiledPolicy,
  indexes: Parameters<typeof collectHostRules>[0],
  facts: RequestFacts,
): CompiledRule | null {
  if (!isPushPath(facts.path, facts.query)) return null
  const fetch: RequestFacts = {
    ...facts,
    path: facts.path.replace(/git-receive-pack$/, 'git-upload-pack'),
    query: facts.query.replace(/(^|&)service=git-receive-pack(?=&|$)/, '$1service=git-upload-pack'),
  }
  let found: CompiledRule | null = null
  for (const rule of candidates(indexes, facts.host))
    if (rule.effect === 'allow' && rule.repo?.access === 'read' && requestStage(policy, rule, fetch) === FULL_MATCH)
      found = earlier(found, rule)
  scratch.length = 0
  return found
}

/** Does `rule` cover `port`: its own ports, else upstream.ports for an allow rule and every port for a deny? */
function coversPort(policy: CompiledPolicy, rule: CompiledRule, port: number): boolean {
  return rule.ports !== null ? rule.ports.has(port) : rule.effect === 'deny' || policy.defaultPorts.has(port)
}

function requestStage(policy: CompiledPolicy, rule: CompiledRule, facts: RequestFacts): number {
  if (!coversPort(policy, rule, facts.port)) return RANK_PORT
  if (rule.methods !== null && !rule.methods.has(facts.method)) return RANK_METHOD
  const forDeny = rule.effect === 'deny'
  const path = rule.repo === null ? facts.path : repoCaseOf(facts.path)
  if (rule.paths !== null && !rule.paths.some((p) => matchPathPattern(p, path, facts.query, forDeny))) return RANK_PATH
  return FULL_MATCH
}

// The last path repoCasePath folded, and the result: a request's rules are asked about one path in
// turn, so it is folded once per request, not once per repo rule.
let foldedFrom = ''
let folded = ''

/** repoCasePath, remembered for the path last asked (decisions are synchronous and never re-entered). */
function repoCaseOf(path: string): string {
  if (path !== foldedFrom) {
    folded = repoCasePath(path)
    foldedFrom = path
  }
  return folded
}

interface ConnectScan {
  denyAll: CompiledRule | null
  denyInside: CompiledRule | null
  allows: CompiledRule[]
  fail: Failure | null
}

interface Failure {
  readonly rank: number
  readonly rule: CompiledRule
  readonly reason: DenyReason
  readonly detail?: string
}

/**
 * The agent's deny rules naming an IP or CIDR, asked of the address a name resolved to (what Squid's
 * `dst` ACLs and Smokescreen's deny ranges do): `deny: [{host: 203.0.113.0/24}]` refuses every name
 * that resolves into that range, not only the literal. The earliest such rule that also matches the
 * rest of the request (port, method, path as written and as a decoding server reads it) denies;
 * null when none does. `request` null for a CONNECT, whose insides the rules cannot see: there only
 * rules without methods and paths apply. Allow rules naming IPs are not asked: a name is opened by
 * its name, never because of where it resolves.
 */
export function denyByAddress(
  policy: CompiledPolicy,
  facts: ConnectFacts,
  address: string,
  request: Pick<RequestFacts, 'method' | 'scheme' | 'path' | 'query'> | null,
): DenyDecision | null {
  const indexes = policy.rules.get(facts.agent)
  const rules = indexes === undefined ? NO_RULES : ipDenyRules(indexes)
  if (rules.length === 0) return null
  const bytes = ipBytes(address)
  if (bytes === null) return null
  let asked: RequestFacts | null = null
  let decoded: string | null = null
  let deny: CompiledRule | null = null
  for (const rule of rules) {
    const host = rule.host
    if (host.kind === 'cidr' ? !cidrContainsBytes(host.cidr, bytes) : host.kind !== 'exact' || host.host !== address)
      continue
    if (request !== null && asked === null) {
      asked = { ...facts, ...request, host: address }
      decoded = decodedReading(asked.path)
    }
    const matches =
      asked === null
        ? rule.methods === null && rule.paths === null && coversPort(policy, rule, facts.port)
        : requestStage(policy, rule, asked) === FULL_MATCH ||
          (decoded !== null &&
            decoded !== asked.path &&
            requestStage(policy, rule, { ...asked, path: decoded }) === FULL_MATCH)
    if (matches) deny = earlier(deny, rule)
  }
  return deny === null ? null : denyWith('denied_by_rule', deny)
}

/** Does the agent have a deny rule naming an IP or CIDR (so that denyByAddress can refuse anything)? */
export function hasIpDenyRules(policy: CompiledPolicy, agent: string): boolean {
  const indexes = policy.rules.get(agent)
  return indexes !== undefined && ipDenyRules(indexes).length > 0
}

const NO_RULES: readonly CompiledRule[] = Object.freeze([])
/** Per agent's rule lists (one array per policy and agent): its deny rules naming an IP or a CIDR. */
const ipDenyCache = new WeakMap<readonly RuleIndex[], readonly CompiledRule[]>()

function ipDenyRules(indexes: readonly RuleIndex[]): readonly CompiledRule[] {
  let list = ipDenyCache.get(indexes)
  if (list === undefined) {
    const out: CompiledRule[] = []
    for (const index of indexes) {
      for (const rules of index.exact.values())
        for (const r of rules)
          if (r.effect === 'deny' && r.host.kind === 'exact' && isIpLiteral(r.host.host) !== null) out.push(r)
      for (const r of index.cidr) if (r.effect === 'deny' && r.host.kind === 'cidr') out.push(r)
    }
    list = out.length === 0 ? NO_RULES : out
    ipDenyCache.set(indexes, list)
  }
  return list
}

export function decideConnect(policy: CompiledPolicy, facts: ConnectFacts): ConnectDecision {
  const indexes = policy.rules.get(facts.agent)
  if (indexes === undefined || !policy.agents.has(facts.agent)) return INTERNAL
  const scan: ConnectScan = { denyAll: null, denyInside: null, allows: [], fail: null }
  const rules = candidates(indexes, facts.host)
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as CompiledRule
    const portOk = coversPort(policy, rule, facts.port)
    if (!portOk) {
      if (rule.effect === 'allow') noteFailure(scan, { rank: RANK_PORT, rule, reason: 'denied_port' })
    } else if (rule.effect === 'allow') {
      scan.allows.push(rule)
    } else if (rule.methods === null && rule.paths === null) {
      scan.denyAll = earlier(scan.denyAll, rule)
    } else {
      scan.denyInside = earlier(scan.denyInside, rule)
    }
  }
  scratch.length = 0
  if (scan.denyAll !== null) return denyWith('denied_by_rule', scan.denyAll)
  return chooseVia(policy, scan)
}

function chooseVia(policy: CompiledPolicy, scan: ConnectScan): ConnectDecision {
  let tunnel: CompiledRule | null = null
  let intercept: CompiledRule | null = null
  for (const rule of scan.allows) {
    const inside = needsInside(rule)
    if (!inside && scan.denyInside === null && policy.intercept !== 'always') {
      tunnel = earlier(tunnel, rule)
    } else if (policy.intercept !== 'never' && !rule.interceptNever) {
      intercept = earlier(intercept, rule)
    } else if (inside) {
      noteFailure(scan, unenforceable(rule))
    } else if (scan.denyInside !== null) {
      noteFailure(scan, {
        rank: RANK_UNENFORCEABLE_DENY,
        rule: scan.denyInside,
        reason: 'denied_by_rule',
        detail: 'needs_interception',
      })
    } else {
      tunnel = earlier(tunnel, rule) // tls.intercept: always, but this rule says `intercept: never`
    }
  }
  if (intercept !== null)
    return intercept.host.kind === 'wildcard'
      ? { verdict: 'allow', reason: 'allowed', ruleId: intercept.id, via: 'intercept', wildcardLeaf: true }
      : { verdict: 'allow', reason: 'allowed', ruleId: intercept.id, via: 'intercept' }
  if (tunnel !== null) return { verdict: 'allow', reason: 'allowed', ruleId: tunnel.id, via: 'tunnel' }
  if (scan.fail !== null) return denyWith(scan.fail.reason, scan.fail.rule, scan.fail.detail)
  return NO_RULE
}

/** The reason an allow rule that needs the inside would give when it cannot see it. */
function unenforceable(rule: CompiledRule): Failure {
  const detail = 'needs_interception'
  if (rule.paths !== null) return { rank: RANK_PATH, rule, reason: 'denied_path', detail }
  if (rule.methods !== null) return { rank: RANK_METHOD, rule, reason: 'denied_method', detail }
  return { rank: RANK_PATH, rule, reason: 'denied_internal_error', detail }
}

function noteFailure(scan: ConnectScan, f: Failure): void {
  const cur = scan.fail
  if (cur === null || f.rank > cur.rank || (f.rank === cur.rank && f.rule.ordinal < cur.rule.ordinal)) scan.fail = f
}

function earlier(cur: CompiledRule | null, rule: CompiledRule): CompiledRule {
  return cur === null || rule.ordinal < cur.ordinal ? rule : cur
}

function denyWith(reason: DenyReason, rule: CompiledRule, detail?: string): DenyDecision {
  return detail === undefined
    ? { verdict: 'deny', reason, ruleId: rule.id }
    : { verdict: 'deny', reason, ruleId: rule.id, detail }
}
