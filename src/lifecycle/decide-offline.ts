/**
 * Deciding a request offline, with the functions the proxy runs (policy/decide.ts decideConnect and
 * matchRequest, net/address-class.ts isAddressAllowed), composed in the proxy's order: identity (is
 * the agent in the policy), the CONNECT (https), the request (plain http, or inside an intercepted
 * tunnel; a spliced tunnel's requests are never decided one by one), then the address check. Used by
 * policy tests, `replay` and `suggest`. Approvals are not applied and the mode is not: this is the
 * honest policy verdict. PURE.
 */
import type { RuntimeConfig } from '../config/types.js'
import { classifyAddress, isAddressAllowed } from '../net/address-class.js'
import { isIpLiteral } from '../net/host.js'
import { classifyNpmPath } from '../packages/npm-path.js'
import { classifyPypiPath, refusedAlternative } from '../packages/pypi-path.js'
import { collectHostRules, type CompiledRule, type PackageControl, type RepoControl } from '../policy/compiled.js'
import { apiRuleOf, classifyGithubApiRequest, decideGithubApiRoute } from '../policy/github-api.js'
import { decideConnect, denyByAddress, matchRequest } from '../policy/decide.js'
import type { Reason } from '../policy/reasons.js'
import type { Decision } from '../policy/types.js'
import type { DecisionRecord } from '../telemetry/events.js'

export interface OfflineFacts {
  readonly agent: string
  /** Upper-case; `CONNECT` with a null path is the CONNECT alone. */
  readonly method: string
  readonly scheme: 'http' | 'https'
  /** Normalised (net/host.normalizeHost). */
  readonly host: string
  readonly port: number
  /** Normalised (net/url-path.normalizePath); null for a CONNECT alone. */
  readonly path: string | null
  readonly query: string
  /** The address the proxy checked when the request was made, when known (used for names not pinned). */
  readonly address?: string | null
  /**
   * The package version asked for was too young for min_age when it was asked for (a recorded
   * `too_new`): publish times are the registry's, so offline this is the only way to know one.
   */
  readonly packageTooNew?: boolean
}

export interface OfflineDecision {
  readonly verdict: 'allow' | 'deny'
  readonly reason: Reason
  readonly rule: string | null
  readonly detail?: string
  /** Which step decided. */
  readonly stage: 'identity' | 'connect' | 'request' | 'address' | 'package'
  /** https: how the CONNECT is handled when it is allowed. */
  readonly via?: 'tunnel' | 'intercept'
}

function from(d: Decision, stage: OfflineDecision['stage'], via?: 'tunnel' | 'intercept'): OfflineDecision {
  const base = { verdict: d.verdict, reason: d.reason, rule: d.ruleId, stage }
  const withDetail = d.verdict === 'deny' && d.detail !== undefined ? { ...base, detail: d.detail } : base
  return via === undefined ? withDetail : { ...withDetail, via }
}

export function decideOffline(config: RuntimeConfig, f: OfflineFacts): OfflineDecision {
  const policy = config.policy
  if (!policy.agents.has(f.agent))
    return { verdict: 'deny', reason: 'denied_auth_invalid', rule: null, detail: 'unknown_agent', stage: 'identity' }
  let via: 'tunnel' | 'intercept' | undefined
  let decided: OfflineDecision | null = null
  let packages: PackageControl | null = null
  let packagesRule: string | null = null
  let repo: RepoControl | null = null
  let repoRule: string | null = null
  if (f.scheme === 'https' || f.method === 'CONNECT') {
    const c = decideConnect(policy, { agent: f.agent, host: f.host, port: f.port })
    if (c.verdict === 'deny') return from(c, 'connect')
    via = c.via
    // A CONNECT alone, or a request in a spliced tunnel: the CONNECT's verdict is the request's.
    if (f.path === null || via === 'tunnel') decided = from(c, 'connect', via)
  }
  if (decided === null) {
    const m = matchRequest(policy, {
      agent: f.agent,
      method: f.method,
      scheme: f.scheme,
      host: f.host,
      port: f.port,
      path: f.path ?? '/',
      query: f.query,
    })
    decided = from(m.decision, 'request', via)
    if (m.decision.verdict === 'deny') return decided
    packages = m.handling.packages
    packagesRule = m.handling.packagesRuleId
    repo = m.handling.repo
    repoRule = m.handling.repoRuleId
  }
  const addresses = addressesOf(config, f)
  const blocked = addresses.find((ip) => !isAddressAllowed(ip, config.upstream.allowPrivate))
  if (blocked !== undefined)
    return {
      verdict: 'deny',
      reason: 'denied_private_address',
      rule: null,
      detail: classifyAddress(blocked),
      stage: 'address',
    }
  // A name's address (a pin, or the one recorded) asked of IP and CIDR deny rules, as the proxy asks
  // the one it dials; inside a spliced tunnel only rules without methods and paths apply.
  const dialled = isIpLiteral(f.host) === null ? addresses[0] : undefined
  if (dialled !== undefined) {
    const inside =
      f.path === null || via === 'tunnel' ? null : { method: f.method, scheme: f.scheme, path: f.path, query: f.query }
    const d = denyByAddress(policy, { agent: f.agent, host: f.host, port: f.port }, dialled, inside)
    if (d !== null) return via === undefined ? from(d, 'address') : from(d, 'address', via)
  }
  const write = repoWriteDenialOffline(repo, f)
  if (write !== null) {
    const refused = {
      verdict: 'deny',
      reason: 'denied_repo_write',
      rule: repoRule,
      detail: write,
      stage: 'request',
    } as const
    return via === undefined ? refused : { ...refused, via }
  }
  const detail = packages === null ? null : packageDenialOffline(packages, f)
  if (detail === null) return decided
  return via === undefined
    ? { verdict: 'deny', reason: 'denied_package', rule: packagesRule, detail, stage: 'package' }
    : { verdict: 'deny', reason: 'denied_package', rule: packagesRule, detail, stage: 'package', via }
}

/**
 * The GitHub API gate's verdict on a write (SPEC §8) as far as its method, path and query tell it:
 * what the route refuses (a merge, a grant the rule lacks, a query string) the proxy refuses whatever
 * the body says; a write whose verdict depends on its body is not refused here. Null: nothing refuses it.
 */
export function repoWriteDenialOffline(
  repo: RepoControl | null,
  f: Pick<OfflineFacts, 'agent' | 'method' | 'path' | 'query'>,
): string | null {
  if (repo === null || (repo.part !== 'api' && repo.part !== 'graphql')) return null
  const rule = apiRuleOf(repo, f.agent)
  if (rule === null) return null
  if (!rule.ok) return 'bad_rule'
  const d = decideGithubApiRoute(rule.rule, { method: f.method, path: f.path ?? '/', query: f.query })
  return d !== 'body' && d.verdict === 'deny' ? d.detail : null
}

/**
 * The package rules' verdict on a registry request (SPEC §11), as far as it is known offline, as
 * the proxy's package gate gives it: a path that cannot be read as a package request is refused;
 * deny and allow lists (names, scopes, name@version) judge by the path; min_age needs the
 * registry's publish times, so a version is too new only when the facts say it was and the rules
 * still hold its age against it. Null: the rules let it pass.
 */
export function packageDenialOffline(
  control: PackageControl,
  f: Pick<OfflineFacts, 'method' | 'path' | 'query' | 'packageTooNew'>,
): string | null {
  if ((f.method !== 'GET' && f.method !== 'HEAD') || f.path === null) return null
  const target = f.query === '' ? f.path : `${f.path}?${f.query}`
  const rules = control.rules
  let name: string
  let version: string | null
  if (control.ecosystem === 'npm') {
    const req = classifyNpmPath(target)
    if (req.kind === 'other') return null
    if (req.kind === 'unparseable') return 'unparseable_path'
    name = req.name
    version = req.kind === 'packument' || req.kind === 'dist_tags' ? null : req.version
  } else {
    const req = classifyPypiPath(target)
    if (req.kind === 'other') return null
    if (req.kind === 'unparseable') return 'unparseable_path'
    name = req.project
    version = req.kind === 'simple_project' ? null : req.version
    const other = refusedAlternative(req, rules)
    if (other !== null) return other.detail
  }
  const admitted = rules.admits(name, version)
  if (!admitted.ok) return admitted.detail
  // A recorded too_new without a version is a document refused whole: every version was too new.
  return f.packageTooNew === true && rules.needsPublishTimes(name) ? 'too_new' : null
}

/** The addresses the proxy would check, as far as they are known offline (names left to DNS: none). */
function addressesOf(config: RuntimeConfig, f: OfflineFacts): readonly string[] {
  if (isIpLiteral(f.host) !== null) return [f.host]
  const pinned = config.upstream.resolve.get(f.host)
  if (pinned !== undefined) return pinned
  return f.address ? [f.address] : []
}

/**
 * Query strings that may change a decision on this host for this agent: '' and each required query
 * of a path pattern (`?service=git-upload-pack`). Records keep no query (it can carry credentials), so
 * a recorded request is decided under each, and a disagreement says the query was a fact it needed.
 */
export function queryCandidates(config: RuntimeConfig, agent: string, host: string): string[] {
  const rules: CompiledRule[] = []
  collectHostRules(config.policy.rules.get(agent) ?? [], host, rules)
  const out = new Set([''])
  for (const rule of rules) for (const p of rule.paths ?? []) if (p.query.length > 0) out.add(p.query.join('&'))
  return [...out]
}

/** A recorded fact the decision needs is not in the record. */
export type MissingFact = 'query' | 'tunnel_contents' | 'full_path'

export interface Reading {
  readonly query: string
  readonly decision: OfflineDecision
}

/** A record decided again: one reading per candidate query (one when the query cannot matter), and what the record lacks. */
export interface RecordDecision {
  readonly readings: readonly Reading[]
  readonly missing: readonly MissingFact[]
}

/** The facts of a decision record, for `agent` (default: the record's own). Null for a record without an agent. */
export function factsOfRecord(r: DecisionRecord, agent: string | null = r.agent): OfflineFacts | null {
  if (agent === null) return null
  return {
    agent,
    method: r.method,
    scheme: r.scheme,
    host: r.host,
    port: r.port,
    path: r.method === 'CONNECT' ? null : (r.path ?? null),
    query: '',
    address: r.address,
    packageTooNew: r.reason === 'denied_package' && r.detail === 'too_new',
  }
}

export function redecideRecord(
  config: RuntimeConfig,
  r: DecisionRecord,
  queries: readonly string[],
  agent: string | null = r.agent,
): RecordDecision | null {
  const facts = factsOfRecord(r, agent)
  if (facts === null) return null
  const qs = facts.path === null || queries.length === 0 ? [''] : queries
  const readings = qs.map((query) => ({ query, decision: decideOffline(config, { ...facts, query }) }))
  const missing: MissingFact[] = []
  if (r.path_sha256 !== undefined) missing.push('full_path')
  if (r.method === 'CONNECT' && r.tls === 'tunnel' && readings.some((x) => x.decision.via === 'intercept'))
    missing.push('tunnel_contents')
  return { readings, missing }
}

const POLICY_DENIALS: ReadonlySet<Reason> = new Set<Reason>([
  'denied_no_rule',
  'denied_by_rule',
  'denied_port',
  'denied_method',
  'denied_path',
  'denied_private_address',
])
/** Reasons given after the policy (and the address check) let the request through. */
const AFTER_POLICY: ReadonlySet<Reason> = new Set<Reason>([
  'allowed',
  'denied_rate_limited',
  'denied_secret_detected',
  'denied_git_push',
  'denied_package',
  'upstream_error',
])
/** Package-rule details decideOffline gives too; the others (unreadable metadata, …) came from the registry's answer. */
const OFFLINE_PACKAGE_DETAILS: ReadonlySet<string> = new Set(['denied', 'not_allowed', 'too_new', 'unparseable_path'])

/** Refusals the method, path and query do not decide: headers, the body, an unusable rule. */
const NOT_BY_ROUTE = new Set([
  'query_params',
  'method_override',
  'encoded_body',
  'body_cut_off',
  'unparseable_body',
  'bad_rule',
])

/**
 * A `denied_repo_write` decideOffline gives too: `read_only` (the policy's), or the API gate's refusal
 * of a write for its route alone (repoWriteDenialOffline). A body's refusal it cannot see.
 * (`query_params` is out: records keep no query, so offline the route is asked without one.)
 */
function repoWriteRefusedByRoute(r: DecisionRecord): boolean {
  if (r.detail === 'read_only') return true
  if (r.detail === undefined || NOT_BY_ROUTE.has(r.detail)) return false
  const route = classifyGithubApiRequest(r.method, r.path ?? '/')
  // On a route that reads the body, only the route's own refusal (forbidden, or not granted) names its action.
  return route !== null && (!route.needsBody || r.detail === route.action)
}

/**
 * The policy verdict a record shows (policy and address check, as decideOffline gives it), or null
 * when the record is not a policy decision (no agent, a failed login, an SNI/Host mismatch, a fault).
 * `denied_repo_write` is the policy's own only as `read_only`; otherwise the API gate refused a write
 * the policy let through.
 */
export function recordedVerdict(r: DecisionRecord): 'allow' | 'deny' | null {
  if (r.agent === null) return null
  if (r.reason === 'denied_repo_write') return repoWriteRefusedByRoute(r) ? 'deny' : 'allow'
  if (r.reason === 'denied_package') return OFFLINE_PACKAGE_DETAILS.has(r.detail ?? '') ? 'deny' : 'allow'
  if (POLICY_DENIALS.has(r.reason)) return 'deny'
  if (AFTER_POLICY.has(r.reason)) return 'allow'
  return null
}
