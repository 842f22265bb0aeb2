/**
 * `portcullis check [--config F]`: load and compile the config, nothing else
 * (smokescreen's check_config), then print a policy summary: who each agent
 * is, how it is identified, its groups, rules and hosts. Every config error is
 * printed as file:line:col: key: message. Exit 0 valid, 2 invalid.
 */
import { parseArgs } from 'node:util'
import { ConfigError, PortcullisError, formatConfigIssue } from '../errors.js'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import type { RuntimeConfig } from '../config/types.js'
import { listRules, type RuleIndex } from '../policy/compiled.js'
import { formatHostPattern } from '../policy/host-pattern.js'
import { BUILTIN_PRESETS } from '../config/presets.js'
import { EXIT_OK, EXIT_USAGE, type CliIo, type CliVerb } from './io.js'

export const run: CliVerb = async (args, io) => {
  const { values } = parseArgs({ args: [...args], options: { config: { type: 'string' } }, strict: true })
  const file = resolveConfigPath(values.config, io.env)
  const config = await loadOrReport(file, io)
  if (config === null) return EXIT_USAGE
  io.stdout(formatSummary(config))
  return EXIT_OK
}

/** The config, or null after printing why it cannot be used. */
export async function loadOrReport(file: string, io: CliIo): Promise<RuntimeConfig | null> {
  try {
    return await loadConfig(file, io.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`${err.issues.map(formatConfigIssue).join('\n')}\n${file}: ${err.issues.length} error(s)\n`)
      return null
    }
    if (err instanceof PortcullisError) {
      io.stderr(`${err.message} (${err.code})\n`)
      return null
    }
    throw err
  }
}

export function formatSummary(config: RuntimeConfig): string {
  const p = config.policy
  const lines = [
    `${config.file}: OK`,
    `mode: ${p.mode}; tls.intercept: ${p.intercept}; default ports: ${[...p.defaultPorts].join(', ')}`,
    `listen: ${config.listen.host}:${config.listen.port}; admin: ${config.admin.host}:${config.admin.port}`,
    `groups (${p.groups?.size ?? 0}):`,
  ]
  for (const [name, index] of p.groups ?? []) lines.push(`  ${name}: ${countRules(index)}`)
  lines.push(`agents (${p.agents.size}):`)
  for (const agent of p.agents.values()) {
    const indexes = p.rules.get(agent.id) ?? []
    const by = [
      agent.tokenSha256 ? 'token' : null,
      agent.sourceCidrs.length > 0 ? `source ${agent.sourceCidrs.map((c) => c.text).join(', ')}` : null,
    ]
    lines.push(`  ${agent.id}: identified by ${by.filter((x) => x !== null).join(' + ')}; mode ${agent.mode}`)
    lines.push(`    groups: ${agent.groups.join(', ') || '(none)'}`)
    lines.push(`    rules: ${indexes.reduce((n, i) => n + i.size, 0)}`)
    lines.push(`    allowed hosts: ${hostsOf(indexes, 'allow') || '(none)'}`)
    const denied = hostsOf(indexes, 'deny')
    if (denied) lines.push(`    denied hosts: ${denied}`)
  }
  lines.push('built-in presets (a `presets:` entry of the same name replaces one):')
  for (const [name, rules] of BUILTIN_PRESETS)
    lines.push(`  ${name}: ${rules.map((r) => `${r.host}${r.methods ? ` [${r.methods.join(', ')}]` : ''}`).join(', ')}`)
  return `${lines.join('\n')}\n`
}

function countRules(index: RuleIndex): string {
  const rules = listRules(index)
  const ids = (effect: 'allow' | 'deny'): number =>
    new Set(rules.filter((r) => r.effect === effect).map((r) => r.id)).size
  return `${ids('allow')} allow, ${ids('deny')} deny (${rules.length} after expanding presets and repos)`
}

function hostsOf(indexes: readonly RuleIndex[], effect: 'allow' | 'deny'): string {
  const hosts = new Set<string>()
  for (const index of indexes)
    for (const r of listRules(index)) if (r.effect === effect) hosts.add(formatHostPattern(r.host))
  return [...hosts].join(', ')
}
