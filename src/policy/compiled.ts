/**
 * The compiled, frozen policy that decide.ts evaluates, and its rule index.
 * Built once per (re)load by config/compile.ts; never mutated afterwards
 * (a reload swaps the whole object). PURE.
 *
 * Matching never scans all rules: exact hosts (and single IPs) are a Map,
 * `*.domain` rules a second Map keyed by `domain` that is probed once per
 * parent label of the host, and CIDR rules a short list looked at only when
 * the host is an IP literal.
 */
import type { HostPattern } from './host-pattern.js'
import { allOfPackageRules, type PackageRules } from '../packages/rules.js'
import type { PathPattern } from './path-pattern.js'
import type { CompiledAgent, InterceptMode, Mode, RuleId } from './types.js'
import { cidrContains, isIpLiteral } from '../net/host.js'

export interface InjectHeader {
  readonly name: string
  /** Environment variable holding the secret; read by the forwarder, never by policy. */
  readonly env: string
  /** `{}` is replaced by the secret, e.g. `Bearer {}`. */
  readonly format: string
  /** Set for HTTP Basic: the value is `Basic base64(<basicUser>:<secret>)` (git's `x-access-token`), not `format`. */
  readonly basicUser?: string
}

/** What a repo rule lets an agent push (SPEC §8); `{agent}` in branches is substituted per decision. */
export interface PushControl {
  readonly branches: readonly string[]
  readonly force: boolean
  readonly delete: boolean
  readonly tags: boolean
  readonly maxPackBytes: number
}

/** A registry rule's package guard: its compiled rules, and where a PyPI file's upload time is looked up. */
export interface PackageControl {
  readonly ecosystem: 'npm' | 'pypi'
  readonly rules: PackageRules
  /** PyPI: the Simple API host of the files this rule serves (pypi.org for files.pythonhosted.org). */
  readonly indexHost: string | null
}

/**
 * Two package guards that both apply to a request (two groups' registry rules, or an agent's own and a
 * group's), as one that refuses whatever either refuses (allOfPackageRules). Guards of another
 * ecosystem on the same host do not combine: the first (`a`, the earlier rule) is kept. The result is
 * kept while `a` lives, so a request does not compile rules again and the packument workers see the
 * same rules object each time.
 */
export function strictestPackages(a: PackageControl, b: PackageControl): PackageControl {
  if (a.ecosystem !== b.ecosystem || a === b) return a
  let byB = combinedPackages.get(a)
  if (byB === undefined) combinedPackages.set(a, (byB = new WeakMap()))
  let both = byB.get(b)
  if (both === undefined) {
    both = Object.freeze({
      ecosystem: a.ecosystem,
      rules: allOfPackageRules([a.rules, b.rules]),
      indexHost: a.indexHost,
    })
    byB.set(b, both)
  }
  return both
}

const combinedPackages = new WeakMap<PackageControl, WeakMap<PackageControl, PackageControl>>()

/** What a github rule lets an agent write through api.github.com (SPEC §8). */
export interface ApiControl {
  readonly pulls: 'none' | 'create'
  readonly issues: 'none' | 'comment' | 'write'
  readonly graphqlMutations: readonly string[]
}

/**
 * The repo rule (`github:` or `git:`) an expanded rule came from: which part of the forge it opens
 * (`smart_http` fetch and push, `api` REST, `graphql`, `download` archives/raw), with what access, and
 * the controls the edge applies to writes (push commands and packs, API write bodies).
 */
export interface RepoControl {
  readonly forge: 'github' | 'git'
  readonly part: 'smart_http' | 'api' | 'graphql' | 'download'
  readonly access: 'read' | 'write'
  readonly push: PushControl
  /** null on `git:` rules (no forge API is known). */
  readonly api: ApiControl | null
  readonly tokenEnv: string | null
}

export interface CompiledRule {
  readonly id: RuleId
  readonly effect: 'allow' | 'deny'
  readonly host: HostPattern
  /** null: the policy's default ports (upstream.ports). */
  readonly ports: ReadonlySet<number> | null
  /** null: any method. Upper-case tokens. */
  readonly methods: ReadonlySet<string> | null
  /** null: any path. */
  readonly paths: readonly PathPattern[] | null
  /** `intercept: never` on the rule: this host's TLS is never terminated for it. */
  readonly interceptNever: boolean
  readonly injectHeaders: readonly InjectHeader[]
  readonly inspectBody: boolean
  /** Set on rules expanded from a `github:` or `git:` entry. */
  readonly repo: RepoControl | null
  /** Set on registry rules with a `packages` block (SPEC §11). */
  readonly packages: PackageControl | null
  /** Position in the config (tie-breaker: the earlier rule is reported). */
  readonly ordinal: number
}

/** One list of rules (a group's, or an agent's own), indexed by host. */
export interface RuleIndex {
  readonly exact: ReadonlyMap<string, readonly CompiledRule[]>
  readonly wildcard: ReadonlyMap<string, readonly CompiledRule[]>
  readonly cidr: readonly CompiledRule[]
  readonly size: number
}

export interface CompiledPolicy {
  readonly mode: Mode
  readonly intercept: InterceptMode
  readonly defaultPorts: ReadonlySet<number>
  readonly agents: ReadonlyMap<string, CompiledAgent>
  /** Agents that have source_cidrs, in config order (first match wins in identity/authenticate). */
  readonly sourceAgents: readonly CompiledAgent[]
  /** Per agent id: its own rules first, then each group's, in the order the agent lists them. */
  readonly rules: ReadonlyMap<string, readonly RuleIndex[]>
  /** Each group's rules, for summaries only (decisions go through `rules`); optional so hand-built test policies may omit it. */
  readonly groups?: ReadonlyMap<string, RuleIndex>
  /** tls.explain_denials (SPEC §2); absent means `auto`. */
  readonly explainDenials?: 'auto' | 'always' | 'never'
}

/** Every environment variable the policy's inject_headers and token_env read, with a rule that names it. */
export function credentialVariables(policy: CompiledPolicy): ReadonlyMap<string, string> {
  const out = new Map<string, string>()
  const indexes = new Set<RuleIndex>()
  for (const list of policy.rules.values()) for (const index of list) indexes.add(index)
  for (const index of indexes)
    for (const list of [...index.exact.values(), ...index.wildcard.values(), index.cidr])
      for (const rule of list) for (const h of rule.injectHeaders) if (!out.has(h.env)) out.set(h.env, rule.id)
  return out
}

const explainCache = new WeakMap<CompiledPolicy, Map<string, ReadonlySet<number> | null>>()

/** Port 443 is HTTPS everywhere: a client CONNECTing there speaks TLS whatever the agent's rules. */
const TLS_PORT = 443

/**
 * On which ports is a denied CONNECT of this agent answered inside TLS (200, a leaf for the host, then
 * the denial as the first request's answer)? null: on none. Only for an agent that trusts the CA: with
 * `auto`, one whose policy has a rule that is intercepted (so its sandbox must already trust the CA),
 * or any agent under `tls.intercept: always`; with `always`, every agent. And only where the client can
 * be expected to speak TLS (SPEC §2): port 443 and the ports the agent's intercepted allow rules cover
 * (their `ports`, else upstream.ports). Elsewhere (ssh to :22, SMTP, MySQL) a 200 would end in a silent
 * close or a wait for a ClientHello that never comes, so the plain 403 with its paragraph is clearer.
 */
export function explainedDenialPorts(policy: CompiledPolicy, agentId: string): ReadonlySet<number> | null {
  const mode = policy.explainDenials ?? 'auto'
  if (mode === 'never' || policy.intercept === 'never') return null
  let cache = explainCache.get(policy)
  if (cache === undefined) explainCache.set(policy, (cache = new Map()))
  const known = cache.get(agentId)
  if (known !== undefined) return known
  const ports = new Set([TLS_PORT])
  let intercepts = policy.intercept === 'always'
  for (const index of policy.rules.get(agentId) ?? [])
    for (const list of [...index.exact.values(), ...index.wildcard.values(), index.cidr])
      for (const r of list) {
        if (r.effect !== 'allow' || r.interceptNever || (policy.intercept !== 'always' && !needsInside(r))) continue
        intercepts = true
        for (const port of r.ports ?? policy.defaultPorts) ports.add(port)
      }
  const explained = mode === 'always' || intercepts ? ports : null
  cache.set(agentId, explained)
  return explained
}

/** The mode a decision for this agent runs in: the agent's own, else the policy's. */
export function effectiveMode(policy: CompiledPolicy, agentId: string): Mode {
  return policy.agents.get(agentId)?.mode ?? policy.mode
}

/** Every rule in an index, in config order (for summaries and tooling; never on the decision path). */
export function listRules(index: RuleIndex): CompiledRule[] {
  const all = [...[...index.exact.values()].flat(), ...[...index.wildcard.values()].flat(), ...index.cidr]
  return all.sort((a, b) => a.ordinal - b.ordinal)
}

/** Does a rule need to see inside the connection (so a CONNECT must be intercepted)? */
export function needsInside(rule: CompiledRule): boolean {
  return (
    rule.methods !== null ||
    rule.paths !== null ||
    rule.injectHeaders.length > 0 ||
    rule.inspectBody ||
    rule.packages !== null
  )
}

export function createRuleIndex(rules: readonly CompiledRule[]): RuleIndex {
  const exact = new Map<string, CompiledRule[]>()
  const wildcard = new Map<string, CompiledRule[]>()
  const cidr: CompiledRule[] = []
  for (const rule of rules) {
    const p = rule.host
    if (p.kind === 'exact') push(exact, p.host, rule)
    else if (p.kind === 'wildcard') push(wildcard, p.suffix, rule)
    else cidr.push(rule)
  }
  for (const list of exact.values()) Object.freeze(list)
  for (const list of wildcard.values()) Object.freeze(list)
  return Object.freeze({ exact, wildcard, cidr: Object.freeze(cidr), size: rules.length })
}

function push(map: Map<string, CompiledRule[]>, key: string, rule: CompiledRule): void {
  const list = map.get(key)
  if (list) list.push(rule)
  else map.set(key, [rule])
}

/**
 * Append to `out` every rule in `indexes` whose host pattern matches the
 * normalised `host` (the caller passes a scratch array: no closure and no
 * allocation per decision). Wildcards are probed at each strict parent
 * (`a.b.c` → `b.c`, `c`), so `*.example.com` matches any depth but never the apex.
 */
export function collectHostRules(indexes: readonly RuleIndex[], host: string, out: CompiledRule[]): void {
  const ipKind = isIpLiteral(host)
  for (let i = 0; i < indexes.length; i++) {
    const index = indexes[i] as RuleIndex
    const exact = index.exact.get(host)
    if (exact !== undefined) for (let j = 0; j < exact.length; j++) out.push(exact[j] as CompiledRule)
    if (ipKind !== null) {
      for (const r of index.cidr) if (r.host.kind === 'cidr' && cidrContains(r.host.cidr, host)) out.push(r)
      continue
    }
    if (index.wildcard.size === 0) continue
    let dot = host.indexOf('.')
    while (dot >= 0) {
      const list = index.wildcard.get(host.slice(dot + 1))
      if (list !== undefined) for (let j = 0; j < list.length; j++) out.push(list[j] as CompiledRule)
      dot = host.indexOf('.', dot + 1)
    }
  }
}
