import { resolve } from 'node:path'
import type { ConfigIssue } from '../errors.js'
import { ConfigError } from '../errors.js'
import { isIpLiteral, normalizeHost, parseCidr } from '../net/host.js'
import { createRuleIndex, type CompiledPolicy, type CompiledRule, type InjectHeader, type RuleIndex } from '../policy/compiled.js'
import { expandGitRule, expandGithubRule } from '../policy/git-rules.js'
import { parseHostPattern } from '../policy/host-pattern.js'
import { parsePathPattern, type PathPattern } from '../policy/path-pattern.js'
import type { AgentLimits, Cidr, CompiledAgent } from '../policy/types.js'
import { parseDurationMs } from './duration.js'
import type { KeyPath, Locator } from './load.js'
import { BUILTIN_PRESETS } from './presets.js'
import type { RawConfig, RawHostRule, RawLimits, RawRule } from './schema.js'
import type { RuntimeConfig } from './types.js'

/** Collects every semantic problem (not just the first) with its position. */
class Issues {
  readonly list: ConfigIssue[] = []
  constructor(readonly loc: Locator) {}
  add(path: KeyPath, message: string, key?: string): void {
    this.list.push(this.loc.at(path, message, key))
  }
}

interface RuleSink {
  readonly rules: CompiledRule[]
  ordinal: number
}

function compileHostRule(r: RawHostRule, id: string, effect: 'allow' | 'deny', path: KeyPath, sink: RuleSink, issues: Issues): void {
  const host = parseHostPattern(r.host)
  if (!host.ok) return issues.add([...path, 'host'], host.message)
  const paths: PathPattern[] = []
  r.paths?.forEach((p, i) => {
    const parsed = parsePathPattern(p)
    if (parsed.ok) paths.push(parsed.pattern)
    else issues.add([...path, 'paths', i], parsed.message)
  })
  const inject: InjectHeader[] = Object.entries(r.inject_headers ?? {}).map(([name, v]) => ({ name: name.toLowerCase(), env: v.env, format: v.format }))
  sink.rules.push({
    id,
    effect,
    host: host.pattern,
    ports: r.ports ? new Set(r.ports) : null,
    methods: r.methods ? new Set(r.methods.map((m) => m.toUpperCase())) : null,
    paths: r.paths ? paths : null,
    interceptNever: r.intercept === 'never',
    injectHeaders: inject,
    inspectBody: r.inspect_body === true,
    ordinal: sink.ordinal++,
  })
}

/** One config entry → compiled rules; presets and repo rules keep the id of the entry that named them. */
function compileRule(raw: RawRule, id: string, effect: 'allow' | 'deny', path: KeyPath, presets: RawConfig['presets'], sink: RuleSink, issues: Issues): void {
  if (raw.host !== undefined) return compileHostRule({ ...raw, host: raw.host }, id, effect, path, sink, issues)
  if (raw.preset !== undefined) {
    const preset = presets[raw.preset] ?? BUILTIN_PRESETS[raw.preset]
    if (!preset) return issues.add([...path, 'preset'], `unknown preset '${raw.preset}' (built in: ${Object.keys(BUILTIN_PRESETS).join(', ')}; or define it under presets:)`)
    for (const r of preset) compileHostRule(r, id, effect, path, sink, issues)
    return
  }
  const specs = raw.github ? expandGithubRule(raw.github.repos, raw.github.access) : raw.git ? gitSpecs(raw.git, path, issues) : []
  for (const s of specs) compileHostRule({ host: s.host, methods: [...s.methods], paths: [...s.paths] }, id, effect, path, sink, issues)
}

function gitSpecs(git: NonNullable<RawRule['git']>, path: KeyPath, issues: Issues): ReturnType<typeof expandGitRule> {
  const host = normalizeHost(git.host)
  if (host === null || host !== git.host) {
    issues.add([...path, 'git', 'host'], host === null ? `'${git.host}' is not a valid host` : `'${git.host}' is not in normal form; use '${host}'`)
    return []
  }
  return expandGitRule(host, git.repos, git.access)
}

function compileRuleList(list: readonly RawRule[], prefix: string, effect: 'allow' | 'deny', path: KeyPath, presets: RawConfig['presets'], sink: RuleSink, issues: Issues): void {
  list.forEach((raw, i) => compileRule(raw, `${prefix}.${effect}[${i}]`, effect, [...path, effect, i], presets, sink, issues))
}

function mergeLimits(base: AgentLimits, over: RawLimits | undefined): AgentLimits {
  if (!over) return base
  return {
    requestsPerMinute: over.requests_per_minute !== undefined ? over.requests_per_minute : base.requestsPerMinute,
    concurrentConnections: over.concurrent_connections !== undefined ? over.concurrent_connections : base.concurrentConnections,
    bytesPerDay: over.bytes_per_day !== undefined ? over.bytes_per_day : base.bytesPerDay,
  }
}

function compileCidrs(list: readonly string[], path: KeyPath, issues: Issues): Cidr[] {
  const out: Cidr[] = []
  list.forEach((text, i) => {
    const c = parseCidr(text)
    if (c) out.push(c)
    else issues.add([...path, i], `'${text}' is not a valid IP address or CIDR`)
  })
  return out
}

function compileResolve(raw: RawConfig['upstream']['resolve'], issues: Issues): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>()
  for (const [name, value] of Object.entries(raw)) {
    const host = normalizeHost(name)
    if (host === null) {
      issues.add(['upstream', 'resolve'], `'${name}' is not a valid host name`, name)
      continue
    }
    const addrs = (Array.isArray(value) ? value : [value]).map((a) => normalizeHost(a))
    if (addrs.some((a) => a === null || isIpLiteral(a) === null)) {
      issues.add(['upstream', 'resolve', name], `pins must be IP addresses`)
      continue
    }
    out.set(host, addrs as string[])
  }
  return out
}

/**
 * Groups are compiled once each; every agent gets its own rules first, then
 * its groups' indexes in the order it lists them. Limits: top level, then each
 * group in the agent's order (a later group overrides an earlier one), then
 * the agent's own.
 */
function compileAgents(raw: RawConfig, topLimits: AgentLimits, issues: Issues): Pick<CompiledPolicy, 'agents' | 'sourceAgents' | 'rules'> {
  const groupIndex = new Map<string, RuleIndex>()
  const sink: RuleSink = { rules: [], ordinal: 0 }
  for (const [name, group] of Object.entries(raw.groups)) {
    sink.rules.length = 0
    compileRuleList(group.deny, name, 'deny', ['groups', name], raw.presets, sink, issues)
    compileRuleList(group.allow, name, 'allow', ['groups', name], raw.presets, sink, issues)
    groupIndex.set(name, createRuleIndex([...sink.rules]))
  }
  const agents = new Map<string, CompiledAgent>()
  const sourceAgents: CompiledAgent[] = []
  const rules = new Map<string, readonly RuleIndex[]>()
  raw.agents.forEach((a, i) => {
    const path = ['agents', i]
    if (agents.has(a.id)) issues.add([...path, 'id'], `duplicate agent id '${a.id}'`)
    if (!a.token && !a.source_cidrs) issues.add(path, `agent '${a.id}' needs a token or source_cidrs to be identified`)
    let limits = topLimits
    a.groups.forEach((g, j) => {
      if (!raw.groups[g]) issues.add([...path, 'groups', j], `unknown group '${g}'`)
      limits = mergeLimits(limits, raw.groups[g]?.limits)
    })
    sink.rules.length = 0
    compileRuleList(a.deny, `agents.${a.id}`, 'deny', path, raw.presets, sink, issues)
    compileRuleList(a.allow, `agents.${a.id}`, 'allow', path, raw.presets, sink, issues)
    const own = sink.rules.length > 0 ? [createRuleIndex([...sink.rules])] : []
    const agent: CompiledAgent = Object.freeze({
      id: a.id,
      tokenSha256: a.token ? Buffer.from(a.token.slice('sha256:'.length), 'hex') : null,
      sourceCidrs: compileCidrs(a.source_cidrs ?? [], [...path, 'source_cidrs'], issues),
      groups: [...a.groups],
      mode: a.mode ?? raw.mode,
      limits: mergeLimits(limits, a.limits),
    })
    agents.set(a.id, agent)
    if (agent.sourceCidrs.length > 0) sourceAgents.push(agent)
    rules.set(a.id, [...own, ...a.groups.flatMap((g) => groupIndex.get(g) ?? [])])
  })
  return { agents, sourceAgents, rules }
}

/** RawConfig → RuntimeConfig + CompiledPolicy, frozen; every semantic problem reported at once. */
export function compileConfig(raw: RawConfig, loc: Locator): RuntimeConfig {
  const issues = new Issues(loc)
  for (const name of Object.keys(raw.presets)) {
    raw.presets[name]?.forEach((r, i) => compileHostRule(r, `presets.${name}[${i}]`, 'allow', ['presets', name, i], { rules: [], ordinal: 0 }, issues))
  }
  const topLimits: AgentLimits = { requestsPerMinute: raw.limits.requests_per_minute, concurrentConnections: raw.limits.concurrent_connections, bytesPerDay: raw.limits.bytes_per_day }
  const compiled = compileAgents(raw, topLimits, issues)
  const allowPrivate = compileCidrs(raw.upstream.allow_private, ['upstream', 'allow_private'], issues)
  const resolvePins = compileResolve(raw.upstream.resolve, issues)
  const defaultTtlMs = parseDurationMs(raw.approvals.default_ttl) ?? 0
  if (issues.list.length > 0) throw new ConfigError(issues.list)
  const policy: CompiledPolicy = Object.freeze({ mode: raw.mode, intercept: raw.tls.intercept, defaultPorts: new Set(raw.upstream.ports), ...compiled })
  return Object.freeze({
    file: loc.file,
    listen: { ...raw.listen },
    admin: { ...raw.admin },
    mode: raw.mode,
    tls: { caCert: resolve(raw.tls.ca_cert), caKey: resolve(raw.tls.ca_key), intercept: raw.tls.intercept },
    upstream: {
      ports: [...raw.upstream.ports],
      resolve: resolvePins,
      allowPrivate,
      caFile: raw.upstream.ca_file === null ? null : resolve(raw.upstream.ca_file),
      connectTimeoutMs: raw.upstream.connect_timeout_ms,
      headerTimeoutMs: raw.upstream.header_timeout_ms,
      idleTimeoutMs: raw.upstream.idle_timeout_ms,
    },
    telemetry: { log: { ...raw.telemetry.log }, memory: { ...raw.telemetry.memory }, redis: { ...raw.telemetry.redis } },
    limits: topLimits,
    approvals: { file: resolve(raw.approvals.file), defaultTtlMs },
    policy,
  })
}
