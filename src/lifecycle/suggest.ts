/**
 * `portcullis suggest` (SPEC §10): from denied and `would_deny` records, the smallest set of rules
 * that would have allowed them, per agent (or for a group), each with its counts, first and last
 * seen and warnings. PURE: records and config text in, a report out.
 *
 * Minimisation, in this order, each step taking the records it answers:
 *  1. repo rules: git smart-HTTP paths (and GitHub archive/raw/API paths) become `github:` or
 *     `git:` rules for the repositories seen, with the access they needed;
 *  2. presets: a built-in or user preset that allows some of what is left is used whole, the one
 *     answering most requests first (`files.pythonhosted.org` → `preset: pypi`);
 *  3. host rules for the rest (suggest-hosts.ts), siblings folded into `*.domain` where safe.
 * Whether a candidate allows a record is asked of the real compiler and decision function (probe.ts).
 * Then the rules are written into the config text (config-edit.ts), the result compiled, and every
 * record decided again with its own agent: what is still denied is listed (`uncovered`), so a
 * suggestion never claims more than it opens (a deny rule still wins, a private address stays shut).
 */
import type { RuntimeConfig } from '../config/types.js'
import { ConfigError, PortcullisError } from '../errors.js'
import { BUILTIN_PRESETS } from '../config/presets.js'
import { parseHostPattern } from '../policy/host-pattern.js'
import { parsePathPattern } from '../policy/path-pattern.js'
import { collectHostRules, listRules, type CompiledRule, type RuleIndex } from '../policy/compiled.js'
import type { DecisionRecord } from '../telemetry/events.js'
import { insertRules, type TargetEdit } from './config-edit.js'
import { queryCandidates, redecideRecord } from './decide-offline.js'
import { createProbe, userPresetsOf, type CompileText, type ProbeContext } from './probe.js'
import { requestsOf } from './records.js'
import { isForgeWrite, namesGlobbedRepo, repoUseOf } from './repo-paths.js'
import type { SuggestedRule } from './rule-yaml.js'
import { foldSiblings, hostDrafts, type HostRuleContext, type Protected } from './suggest-hosts.js'
import {
  CUT_PATH,
  FORGE_WRITE,
  GLOBBED_REPO,
  NOT_SUGGESTED,
  UNLISTABLE_PATH,
  UNREADABLE_RECORD,
  warningsFor,
} from './suggest-notes.js'
import { formatAuthority, normalizeHost } from '../net/host.js'

export interface SuggestInput {
  readonly config: RuntimeConfig
  /** The config file's text: user presets are read from it, and the rules are written into it. */
  readonly configText: string
  readonly records: readonly DecisionRecord[]
  /** One agent, one group (rules go to the group), or neither (every agent, rules to each). */
  readonly agent?: string
  readonly group?: string
  readonly compile: CompileText
}

export interface Target {
  readonly kind: 'agent' | 'group'
  readonly name: string
  /** Where the rules go, as a key path: `agents[0].allow`, `groups.builders.allow`. */
  readonly key: string
}

export interface SuggestedEntry {
  readonly rule: SuggestedRule
  readonly requests: number
  readonly firstSeen: string
  readonly lastSeen: string
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number; readonly requests: number }>
  readonly agents: readonly string[]
  readonly warnings: readonly string[]
}

export interface Uncovered {
  readonly id: string
  readonly agent: string
  readonly method: string
  readonly host: string
  readonly port: number
  readonly path: string | null
  /** What the request gets under the config with the suggested rules. */
  readonly reason: string
  readonly rule: string | null
}

export interface TargetSuggestion {
  readonly target: Target
  readonly requests: number
  readonly rules: readonly SuggestedEntry[]
  readonly notes: readonly string[]
  readonly uncovered: readonly Uncovered[]
}

export interface NotSuggested {
  readonly reason: string
  readonly requests: number
  readonly hosts: readonly string[]
  readonly rules: readonly string[]
  readonly why: string
}

export interface SuggestReport {
  /** Denied requests considered (records, with the repeats folded into them). */
  readonly requests: number
  readonly targets: readonly TargetSuggestion[]
  readonly notSuggested: readonly NotSuggested[]
  /** The config text with every target's rules added (equal to the input when there are none). */
  readonly editedText: string
}

/** Reasons an allow rule lifts; `denied_repo_write` only as `read_only` (a repo opened read-only). */
function isLiftable(r: DecisionRecord): boolean {
  switch (r.reason) {
    case 'denied_no_rule':
    case 'denied_port':
    case 'denied_method':
    case 'denied_path':
      return true
    case 'denied_repo_write':
      return r.detail === 'read_only'
    default:
      return false
  }
}

export function suggestRules(input: SuggestInput): SuggestReport {
  const { config } = input
  const agents = config.policy.agents
  const inScope = (r: DecisionRecord): boolean =>
    r.decision === 'deny' &&
    (input.agent === undefined || r.agent === input.agent) &&
    (input.group === undefined || (r.agent !== null && (agents.get(r.agent)?.groups.includes(input.group) ?? false)))
  const denials = input.records.filter(inScope)
  const candidates = denials.filter((r) => isLiftable(r) && r.agent !== null && agents.has(r.agent))
  // A record no decision could have made (a log is a file anyone may edit) gets no rule: its host
  // written into the config would be refused, and take every other suggestion down with it.
  const unreadable = candidates.filter((r) => !decidable(r))
  const liftable = candidates.filter(decidable)
  const lifted = new Set(liftable)
  const ctx: ProbeContext = { config, userPresets: userPresetsOf(input.configText), compile: input.compile }
  const onPurpose = denials.filter((r) => r.reason === 'denied_by_rule')
  const drafts = targetsOf(input, liftable).map((t) => ({
    ...t,
    ...minimise(t.records, t.agents, t.target, ctx, onPurpose),
  }))
  // Denials no rule is offered for, and why.
  const withheld = new Map<DecisionRecord, string>(unreadable.map((r) => [r, UNREADABLE_RECORD]))
  for (const d of drafts) {
    for (const r of d.forgeWrites) withheld.set(r, FORGE_WRITE)
    for (const r of d.globbed) withheld.set(r, GLOBBED_REPO)
    for (const r of d.cutPaths) withheld.set(r, CUT_PATH)
    for (const r of d.unlistable) withheld.set(r, UNLISTABLE_PATH)
  }
  const edits: TargetEdit[] = drafts.map((d) => ({
    kind: d.target.kind,
    name: d.target.name,
    rules: d.entries.map((e) => ({ rule: e.rule, comment: commentFor(e) })),
  }))
  const editedText = insertRules(input.configText, edits)
  const edited = drafts.length > 0 ? compileSuggested(input.compile, editedText) : config
  const targets = drafts.map((d) => ({
    target: d.target,
    requests: d.records.reduce((n, r) => n + requestsOf(r), 0),
    rules: d.entries,
    notes: d.notes,
    uncovered: uncoveredUnder(edited, d.records),
  }))
  return {
    requests: denials.reduce((n, r) => n + requestsOf(r), 0),
    targets,
    notSuggested: notSuggested(
      denials.filter((r) => !lifted.has(r) || withheld.has(r)),
      agents,
      withheld,
    ),
    editedText,
  }
}

/**
 * The config with the suggested rules, compiled. It failing is a bug here, not in the operator's
 * file: the positions it names are in text only suggest has seen, so they are not reported as theirs.
 */
function compileSuggested(compile: CompileText, text: string): RuntimeConfig {
  try {
    return compile(text)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    const what = err.issues.map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`).join('; ')
    throw new PortcullisError('PC_ERR_INTERNAL', `a suggested rule does not compile (a bug in suggest): ${what}`, {
      cause: err,
    })
  }
}

const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/

/** Could the proxy have decided this record as it reads: a host in normal form, a real port, a method token? */
function decidable(r: DecisionRecord): boolean {
  return (
    typeof r.host === 'string' &&
    normalizeHost(r.host) === r.host &&
    Number.isInteger(r.port) &&
    r.port >= 1 &&
    r.port <= 65_535 &&
    typeof r.method === 'string' &&
    METHOD.test(r.method)
  )
}

interface TargetRecords {
  readonly target: Target
  readonly records: DecisionRecord[]
  /** The agents whose policies the rules join (for path limits and deny rules). */
  readonly agents: readonly string[]
}

function targetsOf(input: SuggestInput, liftable: readonly DecisionRecord[]): TargetRecords[] {
  const ids = [...input.config.policy.agents.keys()]
  if (input.group !== undefined) {
    if (!input.config.policy.groups?.has(input.group) && input.config.policy.groups !== undefined)
      throw new Error(`group '${input.group}' is not in the config`)
    if (liftable.length === 0) return []
    const members = ids.filter((id) => input.config.policy.agents.get(id)?.groups.includes(input.group as string))
    return [
      {
        target: { kind: 'group', name: input.group, key: `groups.${input.group}.allow` },
        records: [...liftable],
        agents: members,
      },
    ]
  }
  const byAgent = new Map<string, DecisionRecord[]>()
  for (const r of liftable) {
    const list = byAgent.get(r.agent as string)
    if (list === undefined) byAgent.set(r.agent as string, [r])
    else list.push(r)
  }
  return [...byAgent]
    .sort(([a], [b]) => ids.indexOf(a) - ids.indexOf(b))
    .map(([agent, records]) => ({
      target: { kind: 'agent', name: agent, key: `agents[${ids.indexOf(agent)}].allow` },
      records,
      agents: [agent],
    }))
}

interface Minimised {
  readonly entries: SuggestedEntry[]
  readonly notes: string[]
  /** Pushes and GitHub writes no repo rule answered: no other rule is offered for them (isForgeWrite). */
  readonly forgeWrites: DecisionRecord[]
  /** Requests whose path names a repository with a glob character (namesGlobbedRepo): no rule is offered. */
  readonly globbed: DecisionRecord[]
  /** Requests on a path-limited host whose recorded path was cut (path_sha256): no path rule can name it. */
  readonly cutPaths: DecisionRecord[]
  /** Requests on a path-limited host whose path no path pattern names literally (isLiteralPath). */
  readonly unlistable: DecisionRecord[]
}

/** Does the path, written as a path pattern, match itself alone (no `*`, no `?`, in normal form)? */
function isLiteralPath(path: string): boolean {
  const p = parsePathPattern(path)
  return p.ok && p.pattern.literal === path && p.pattern.query.length === 0
}

function minimise(
  records: readonly DecisionRecord[],
  agentIds: readonly string[],
  target: Target,
  ctx: ProbeContext,
  onPurpose: readonly DecisionRecord[],
): Minimised {
  const entries: SuggestedEntry[] = []
  // Not offered to any rule below (repo rules would read the '*' as a wildcard); listed as not suggested.
  const globbed = records.filter(namesGlobbedRepo)
  const skipped = new Set(globbed)
  let rest = records.filter((r) => !skipped.has(r))
  // What the rules so far took leaves `rest` once per kind of rule, not once per rule (quadratic).
  const gone = new Set<DecisionRecord>()
  const take = (rule: SuggestedRule, taken: readonly DecisionRecord[], folded: readonly string[] = []): void => {
    entries.push(entryOf(rule, taken, folded, ctx.config.upstream.allowPrivate))
    for (const r of taken) gone.add(r)
  }
  const untaken = (): DecisionRecord[] => rest.filter((r) => !gone.has(r))
  for (const [rule, taken] of repoRules(rest, ctx)) take(rule, taken)
  rest = untaken()
  const forgeWrites = rest.filter(isForgeWrite)
  rest = rest.filter((r) => !isForgeWrite(r))
  for (const [rule, taken] of presetRules(rest, ctx)) take(rule, taken)
  rest = untaken()
  const hostCtx = hostContext(ctx.config, agentIds, target, onPurpose)
  // Where the rule must list paths, a path the record does not hold whole cannot be listed.
  const listsPaths = (r: DecisionRecord): boolean =>
    r.method !== 'CONNECT' && r.path !== null && hostCtx.pathLimited(r.host)
  const cutPaths = rest.filter((r) => r.path_sha256 !== undefined && listsPaths(r))
  // A path the pattern syntax would read as more than itself ('*', '?', not in normal form) is not widened.
  const unlistable = rest.filter(
    (r) => r.path_sha256 === undefined && listsPaths(r) && !isLiteralPath(r.path as string),
  )
  const cut = new Set([...cutPaths, ...unlistable])
  rest = rest.filter((r) => !cut.has(r))
  const folded = foldSiblings(hostDrafts(rest, hostCtx), hostCtx)
  for (const d of folded.drafts) take(d.rule, d.records, d.folded)
  return { entries, notes: folded.notes, forgeWrites, globbed, cutPaths, unlistable }
}

/** Repo rules for the repositories the records used, grouped per forge (and git host) and access. */
function repoRules(records: readonly DecisionRecord[], ctx: ProbeContext): Array<[SuggestedRule, DecisionRecord[]]> {
  const groups = new Map<
    string,
    { host: string; forge: 'github' | 'git'; repos: Map<string, DecisionRecord[]>; write: Set<string> }
  >()
  for (const r of records) {
    const use = repoUseOf(r)
    if (use === null) continue
    const key = use.forge === 'github' ? 'github' : `git ${use.host}`
    const g = groups.get(key) ?? { host: use.host, forge: use.forge, repos: new Map(), write: new Set<string>() }
    groups.set(key, g)
    const used = g.repos.get(use.repo)
    if (used === undefined) g.repos.set(use.repo, [r])
    else used.push(r)
    if (use.write) g.write.add(use.repo)
  }
  const candidates: Array<[SuggestedRule, DecisionRecord[]]> = []
  for (const g of groups.values()) {
    for (const access of ['read', 'write'] as const) {
      const repos = [...g.repos.keys()].filter((repo) => g.write.has(repo) === (access === 'write')).sort()
      if (repos.length === 0) continue
      const taken = repos.flatMap((repo) => g.repos.get(repo) ?? [])
      const rule: SuggestedRule =
        g.forge === 'github' ? { github: { repos, access } } : { git: { host: g.host, repos, access } }
      candidates.push([rule, taken])
    }
  }
  const probe = createProbe(
    ctx,
    candidates.map(([rule]) => rule),
  )
  return candidates
    .map(([rule, taken], i): [SuggestedRule, DecisionRecord[]] => [rule, taken.filter((r) => probe.allows(i, r))])
    .filter(([, taken]) => taken.length > 0)
}

/** Presets, greedily: the one that allows the most remaining requests first, until none allows any. */
function presetRules(records: readonly DecisionRecord[], ctx: ProbeContext): Array<[SuggestedRule, DecisionRecord[]]> {
  const names = [...new Set([...BUILTIN_PRESETS.keys(), ...Object.keys(ctx.userPresets)])].sort()
  if (records.length === 0 || names.length === 0) return []
  const probe = createProbe(
    ctx,
    names.map((preset) => ({ preset })),
  )
  const covers = names.map((_, i) => records.filter((r) => probe.allows(i, r)))
  const out: Array<[SuggestedRule, DecisionRecord[]]> = []
  const rest = new Set(records)
  for (;;) {
    let best = -1
    let bestN = 0
    covers.forEach((c, i) => {
      const n = c.filter((r) => rest.has(r)).reduce((s, r) => s + requestsOf(r), 0)
      if (n > bestN) [best, bestN] = [i, n]
    })
    if (best < 0) return out
    const taken = (covers[best] ?? []).filter((r) => rest.has(r))
    out.push([{ preset: names[best] as string }, taken])
    for (const r of taken) rest.delete(r)
  }
}

function indexesOf(config: RuntimeConfig, agentIds: readonly string[], target: Target): RuleIndex[] {
  const out = new Set<RuleIndex>()
  for (const id of agentIds) for (const index of config.policy.rules.get(id) ?? []) out.add(index)
  const group = target.kind === 'group' ? config.policy.groups?.get(target.name) : undefined
  if (group !== undefined) out.add(group)
  return [...out]
}

function hostContext(
  config: RuntimeConfig,
  agentIds: readonly string[],
  target: Target,
  onPurpose: readonly DecisionRecord[],
): HostRuleContext {
  const indexes = indexesOf(config, agentIds, target)
  const denies: Protected[] = indexes.flatMap((index) =>
    listRules(index)
      .filter((r) => r.effect === 'deny')
      .map((r) => ({ pattern: r.host, rule: r.id })),
  )
  for (const r of onPurpose) {
    const p = parseHostPattern(r.host)
    if (p.ok) denies.push({ pattern: p.pattern, rule: r.rule ?? 'a deny rule' })
  }
  return {
    defaultPorts: config.policy.defaultPorts,
    protected: denies,
    pathLimited: (host) => {
      const rules: CompiledRule[] = []
      collectHostRules(indexes, host, rules)
      return rules.some((r) => r.effect === 'allow' && r.paths !== null)
    },
  }
}

function entryOf(
  rule: SuggestedRule,
  records: readonly DecisionRecord[],
  folded: readonly string[],
  allowPrivate: RuntimeConfig['upstream']['allowPrivate'],
): SuggestedEntry {
  const hosts = new Map<string, { host: string; port: number; requests: number }>()
  for (const r of records) {
    const key = `${r.host}:${r.port}`
    const h = hosts.get(key) ?? { host: r.host, port: r.port, requests: 0 }
    h.requests += requestsOf(r)
    hosts.set(key, h)
  }
  const times = records.map((r) => r.time).sort()
  return {
    rule,
    requests: records.reduce((n, r) => n + requestsOf(r), 0),
    firstSeen: times[0] ?? '',
    lastSeen: times[times.length - 1] ?? '',
    hosts: [...hosts.values()].sort((a, b) => b.requests - a.requests || a.host.localeCompare(b.host)),
    agents: [...new Set(records.map((r) => r.agent as string))].sort(),
    warnings: warningsFor(rule, records, folded, allowPrivate),
  }
}

const shortTime = (t: string): string => t.replace(/\.\d+Z$/, 'Z')

/** The comment written above a rule in the config: what it answers, when, and the warnings. */
export function commentFor(e: SuggestedEntry): string[] {
  // A default port goes unsaid, unless the host was also seen on another port (example.com:80 and :443).
  const portsOf = new Map<string, number>()
  for (const h of e.hosts) portsOf.set(h.host, (portsOf.get(h.host) ?? 0) + 1)
  const hosts = e.hosts.map((h) => {
    const quiet = (h.port === 443 || h.port === 80) && portsOf.get(h.host) === 1
    return `${h.host}${quiet ? '' : `:${h.port}`} ×${h.requests}`
  })
  const lines = [
    `suggested: ${e.requests} denied request${e.requests === 1 ? '' : 's'} by ${e.agents.join(', ')} (${hosts.join(', ')}), ${shortTime(e.firstSeen)} .. ${shortTime(e.lastSeen)}`,
  ]
  for (const w of e.warnings) lines.push(`warning: ${w}`)
  return lines
}

function uncoveredUnder(config: RuntimeConfig, records: readonly DecisionRecord[]): Uncovered[] {
  const out: Uncovered[] = []
  for (const r of records) {
    const agent = r.agent as string
    const d = redecideRecord(config, r, queryCandidates(config, agent, r.host))
    if (d === null || d.readings.some((x) => x.decision.verdict === 'allow')) continue
    const first = d.readings[0]?.decision
    out.push({
      id: r.id,
      agent,
      method: r.method,
      host: r.host,
      port: r.port,
      path: r.path,
      reason: first?.reason ?? 'denied_no_rule',
      rule: first?.rule ?? null,
    })
  }
  return out
}

function notSuggested(
  records: readonly DecisionRecord[],
  agents: RuntimeConfig['policy']['agents'],
  withheld: ReadonlyMap<DecisionRecord, string>,
): NotSuggested[] {
  const by = new Map<string, { requests: number; hosts: Set<string>; rules: Set<string>; why: string }>()
  for (const r of records) {
    const unknownAgent = r.agent !== null && !agents.has(r.agent) && NOT_SUGGESTED[r.reason] === undefined
    const why =
      withheld.get(r) ??
      (unknownAgent
        ? `agent ${r.agent} is not in the config`
        : (NOT_SUGGESTED[r.reason] ?? 'not a denial an allow rule lifts'))
    const key = `${r.reason}|${why}`
    const g = by.get(key) ?? { requests: 0, hosts: new Set<string>(), rules: new Set<string>(), why }
    g.requests += requestsOf(r)
    g.hosts.add(r.port === 443 || r.port === 80 ? r.host : formatAuthority(r.host, r.port))
    if (r.rule !== null) g.rules.add(r.rule)
    by.set(key, g)
  }
  return [...by]
    .map(([key, g]) => ({
      reason: key.slice(0, key.indexOf('|')),
      requests: g.requests,
      hosts: [...g.hosts].sort(),
      rules: [...g.rules].sort(),
      why: g.why,
    }))
    .sort((a, b) => b.requests - a.requests)
}
