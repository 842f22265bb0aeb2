/**
 * RawConfig → RuntimeConfig: the single mapping from snake_case YAML to
 * camelCase runtime objects (STYLE §4). Semantic checks that a schema cannot
 * express (host patterns, CIDRs, unknown presets and groups, duplicate agent
 * ids) are collected and thrown as one ConfigError, located in the file.
 *
 * Limits per agent: the top-level `limits`, then each of the agent's groups in
 * the order the agent lists them (a later group's value replaces an earlier
 * one: the list reads like layered config), then the agent's own `limits`.
 * Only keys that are present override; `null` explicitly means "no limit".
 */
import type { RuntimeConfig } from './types.js'
import { createRuleIndex, type CompiledPolicy, type CompiledRule, type RuleIndex } from '../policy/compiled.js'
import type { AgentLimits, CompiledAgent } from '../policy/types.js'
import { isIpLiteral, normalizeHost, parseCidr, type Cidr } from '../net/host.js'
import { createRuleCompiler, type RuleCompiler } from './compile-rules.js'
import type { DenyFiles } from './compile-packages.js'
import { Issues, type ConfigSource, type KeyPath } from './issues.js'
import { parseDurationMs } from './duration.js'
import { redisUrlProblem } from '../redis/url.js'
import { type RawAgent, type RawConfig, type RawLimits } from './schema.js'

export function compileConfig(raw: RawConfig, source: ConfigSource, denyFiles: DenyFiles = new Map()): RuntimeConfig {
  const issues = new Issues(source)
  const rules = createRuleCompiler(raw, issues, denyFiles)
  const limits = toLimits(raw.limits)
  const groups = compileGroups(raw, rules)
  const policy = compilePolicy(raw, rules, groups, limits, issues)
  const upstream = compileUpstream(raw, issues)
  const redisUrl = raw.telemetry.redis.url
  const redisProblem = redisUrl === null ? null : redisUrlProblem(redisUrl)
  if (redisProblem !== null) issues.add(['telemetry', 'redis', 'url'], redisProblem)
  issues.throwIfAny()
  const t = raw.telemetry
  return deepFreeze({
    file: source.file,
    listen: {
      host: raw.listen.host,
      port: raw.listen.port,
      maxConnections: raw.listen.max_connections === 'auto' ? null : raw.listen.max_connections,
      maxUnauthenticatedPerSource: raw.listen.max_unauthenticated_per_source,
      unauthenticatedDenialsPerMinute: raw.listen.unauthenticated_denials_per_minute,
    },
    admin: { ...raw.admin },
    workers: raw.workers === 'auto' ? null : raw.workers,
    mode: raw.mode,
    tls: { caCert: raw.tls.ca_cert, caKey: raw.tls.ca_key, intercept: raw.tls.intercept },
    upstream,
    telemetry: {
      log: { level: t.log.level, format: t.log.format },
      memory: { size: t.memory.size },
      redis: { url: t.redis.url, stream: t.redis.stream, maxlen: t.redis.maxlen },
    },
    limits,
    approvals: { file: raw.approvals.file, defaultTtlMs: parseDurationMs(raw.approvals.default_ttl) ?? 0 },
    identity: {
      signingKeyEnv: raw.identity.signing_key_env,
      previousSigningKeyEnv: raw.identity.previous_signing_key_env,
      maxSandboxTtlMs: parseDurationMs(raw.identity.max_sandbox_ttl) ?? 0,
      sandboxProxy: raw.identity.sandbox_proxy,
    },
    testsFile: testsFileOf(raw.tests_file, source.file),
    denyFiles: [...denyFiles.keys()],
    policy,
  })
}

/** `tests_file`, else `<config>.tests.yaml` beside the config (`portcullis.yaml` → `portcullis.tests.yaml`). */
function testsFileOf(value: string | null | undefined, file: string): RuntimeConfig['testsFile'] {
  if (value === null) return null
  if (value !== undefined) return { path: value, explicit: true }
  return { path: `${file.replace(/\.ya?ml$/i, '')}.tests.yaml`, explicit: false }
}

interface CompiledGroup {
  readonly index: RuleIndex
  readonly limits: RawLimits | undefined
}

function compileGroups(raw: RawConfig, rules: RuleCompiler): Map<string, CompiledGroup> {
  const out = new Map<string, CompiledGroup>()
  for (const [name, g] of Object.entries(raw.groups)) {
    const list = compileAllowDeny(rules, g, name, ['groups', name])
    out.set(name, { index: createRuleIndex(list), limits: g.limits })
  }
  return out
}

function compileAllowDeny(
  rules: RuleCompiler,
  src: Pick<RawAgent, 'allow' | 'deny'>,
  idPrefix: string,
  path: KeyPath,
): CompiledRule[] {
  return [
    ...rules.compileList(src.allow, 'allow', idPrefix, [...path, 'allow']),
    ...rules.compileList(src.deny, 'deny', idPrefix, [...path, 'deny']),
  ]
}

function compilePolicy(
  raw: RawConfig,
  rules: RuleCompiler,
  groups: Map<string, CompiledGroup>,
  defaults: AgentLimits,
  issues: Issues,
): CompiledPolicy {
  const agents = new Map<string, CompiledAgent>()
  const ruleSets = new Map<string, readonly RuleIndex[]>()
  raw.agents.forEach((a, i) => {
    const path: KeyPath = ['agents', i]
    if (agents.has(a.id)) issues.add([...path, 'id'], `duplicate agent id '${a.id}'`)
    const agent = compileAgent(raw, a, path, groups, defaults, issues)
    const own = createRuleIndex(compileAllowDeny(rules, a, `agents.${a.id}`, path))
    const sets = [own, ...a.groups.flatMap((g) => groups.get(g)?.index ?? [])]
    if (!agents.has(a.id)) {
      agents.set(a.id, agent)
      ruleSets.set(a.id, Object.freeze(sets.filter((s) => s.size > 0)))
    }
  })
  return {
    mode: raw.mode,
    intercept: raw.tls.intercept,
    explainDenials: raw.tls.explain_denials,
    defaultPorts: new Set(raw.upstream.ports),
    agents,
    sourceAgents: [...agents.values()].filter((a) => a.sourceCidrs.length > 0),
    rules: ruleSets,
    groups: new Map([...groups].map(([name, g]) => [name, g.index])),
  }
}

function compileAgent(
  raw: RawConfig,
  a: RawAgent,
  path: KeyPath,
  groups: Map<string, CompiledGroup>,
  defaults: AgentLimits,
  issues: Issues,
): CompiledAgent {
  if (a.token === undefined && a.source_cidrs.length === 0 && !a.sandboxes) {
    issues.add(path, `agent '${a.id}' needs a token, source_cidrs or sandboxes: true to be identified`)
  }
  a.groups.forEach((g, j) => {
    if (!groups.has(g))
      issues.add([...path, 'groups', j], `unknown group '${g}' (known: ${[...groups.keys()].join(', ') || 'none'})`)
  })
  let limits = defaults
  for (const g of a.groups) limits = overrideLimits(limits, groups.get(g)?.limits)
  limits = overrideLimits(limits, a.limits)
  return {
    id: a.id,
    tokenSha256: a.token === undefined ? null : Buffer.from(a.token.slice('sha256:'.length).toLowerCase(), 'hex'),
    sourceCidrs: compileCidrs(a.source_cidrs, [...path, 'source_cidrs'], issues),
    groups: [...a.groups],
    mode: a.mode ?? raw.mode,
    limits,
    ...(a.sandboxes ? { sandboxes: true } : {}),
  }
}

function toLimits(l: RawConfig['limits']): AgentLimits {
  return {
    requestsPerMinute: l.requests_per_minute,
    concurrentConnections: l.concurrent_connections,
    bytesPerDay: l.bytes_per_day,
  }
}

function overrideLimits(base: AgentLimits, l: RawLimits | undefined): AgentLimits {
  if (!l) return base
  return {
    requestsPerMinute: l.requests_per_minute === undefined ? base.requestsPerMinute : l.requests_per_minute,
    concurrentConnections:
      l.concurrent_connections === undefined ? base.concurrentConnections : l.concurrent_connections,
    bytesPerDay: l.bytes_per_day === undefined ? base.bytesPerDay : l.bytes_per_day,
  }
}

function compileCidrs(texts: readonly string[], path: KeyPath, issues: Issues): Cidr[] {
  const out: Cidr[] = []
  texts.forEach((text, i) => {
    const cidr = parseCidr(text)
    if (cidr) out.push(cidr)
    else issues.add([...path, i], `'${text}' is not a valid CIDR or IP address`)
  })
  return out
}

function compileUpstream(raw: RawConfig, issues: Issues): RuntimeConfig['upstream'] {
  const u = raw.upstream
  return {
    ports: [...u.ports],
    resolve: compileResolve(u.resolve, issues),
    allowPrivate: compileCidrs(u.allow_private, ['upstream', 'allow_private'], issues),
    caFile: u.ca_file,
    connectTimeoutMs: u.connect_timeout_ms,
    headerTimeoutMs: u.header_timeout_ms,
    responseHeaderTimeoutMs: u.response_header_timeout_ms,
    idleTimeoutMs: u.idle_timeout_ms,
    dnsCacheTtlMs: u.dns_cache_ttl_ms,
  }
}

function compileResolve(pins: RawConfig['upstream']['resolve'], issues: Issues): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>()
  for (const [name, value] of Object.entries(pins)) {
    const path: KeyPath = ['upstream', 'resolve', name]
    const host = normalizeHost(name)
    if (host === null) issues.add(path, `'${name}' is not a valid host name`, true)
    else if (host !== name) issues.add(path, `'${name}' is not in normal form; use '${host}'`, true)
    const list = typeof value === 'string' ? [value] : value
    const addrs: string[] = []
    list.forEach((text, i) => {
      const ip = normalizeHost(text)
      if (ip === null || isIpLiteral(ip) === null)
        issues.add(typeof value === 'string' ? path : [...path, i], `'${text}' is not an IP address`)
      else addrs.push(ip)
    })
    if (host !== null) out.set(host, Object.freeze(addrs))
  }
  return out
}

/** Freeze plain objects and arrays all the way down; Maps, Sets, Buffers and RegExps are left as built. */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value
  if (value instanceof Map || value instanceof Set || ArrayBuffer.isView(value) || value instanceof RegExp) {
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v)
    return value
  }
  for (const v of Object.values(value)) deepFreeze(v)
  return Object.freeze(value)
}
