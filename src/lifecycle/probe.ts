/**
 * Which recorded requests a candidate rule would allow, answered by the real compiler and decision
 * function rather than a second reading of rule semantics: each candidate is compiled into a small
 * config of its own (one agent per candidate, the config's ports, interception setting and user
 * presets), and each record is decided again for that agent. The address check is left out here
 * (every address is allowed in the probe config); `suggest` warns about private addresses itself.
 * PURE: compiling is a function of text (config/load.ts parseConfigText, passed in).
 */
import { parse } from 'yaml'
import type { RuntimeConfig } from '../config/types.js'
import type { DecisionRecord } from '../telemetry/events.js'
import { queryCandidates, redecideRecord } from './decide-offline.js'
import type { SuggestedRule } from './rule-yaml.js'

/** Compile config text into a RuntimeConfig (throws ConfigError when it is invalid). */
export type CompileText = (text: string) => RuntimeConfig

export interface ProbeContext {
  readonly config: RuntimeConfig
  /** The config's `presets:` as written, without `packages` blocks (they do not change what a rule allows). */
  readonly userPresets: Readonly<Record<string, unknown>>
  readonly compile: CompileText
}

/** The user presets of a config's text, ready for a probe config. */
export function userPresetsOf(configText: string): Record<string, unknown> {
  let raw: unknown
  try {
    raw = parse(configText, { maxAliasCount: 100 })
  } catch {
    return {}
  }
  const presets = (raw as { presets?: unknown } | null)?.presets
  if (presets === null || typeof presets !== 'object' || Array.isArray(presets)) return {}
  const out: Record<string, unknown> = {}
  for (const [name, rules] of Object.entries(presets as Record<string, unknown>)) {
    if (!Array.isArray(rules)) continue
    out[name] = rules.map((r: unknown) => {
      if (r === null || typeof r !== 'object') return r
      const { packages: _packages, ...rest } = r as Record<string, unknown>
      return rest
    })
  }
  return out
}

export interface Probe {
  /** Does candidate `i` allow the record (under some reading of its unrecorded query)? */
  allows(i: number, r: DecisionRecord): boolean
}

const probeAgent = (i: number): string => `probe-${i}`

/** Compile the candidates together, one probe agent each. Throws if a candidate does not compile. */
export function createProbe(ctx: ProbeContext, candidates: readonly SuggestedRule[]): Probe {
  if (candidates.length === 0) return { allows: () => false }
  const text = JSON.stringify({
    tls: { intercept: ctx.config.policy.intercept },
    upstream: { ports: [...ctx.config.policy.defaultPorts], allow_private: ['0.0.0.0/0', '::/0'] },
    presets: ctx.userPresets,
    agents: candidates.map((rule, i) => ({ id: probeAgent(i), source_cidrs: ['127.0.0.1/32'], allow: [rule] })),
  })
  const config = ctx.compile(text)
  // A week of records repeats the same few requests: decide each shape once per candidate.
  const seen = new Map<string, boolean>()
  return {
    allows(i, r) {
      const key = `${i} ${r.method} ${r.scheme} ${r.host} ${r.port} ${r.path ?? ''}`
      const known = seen.get(key)
      if (known !== undefined) return known
      const agent = probeAgent(i)
      const decided = redecideRecord(config, r, queryCandidates(config, agent, r.host), agent)
      const allowed = decided !== null && decided.readings.some((x) => x.decision.verdict === 'allow')
      seen.set(key, allowed)
      return allowed
    },
  }
}
