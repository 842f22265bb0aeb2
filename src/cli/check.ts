/**
 * `portcullis check [--config F] [--tests F]`: load and compile the config
 * (smokescreen's check_config), print a policy summary (who each agent is, how
 * it is identified, its groups, rules and hosts), then run the policy tests
 * (SPEC §10: tests_file, else <config>.tests.yaml when present) and print each
 * failure with what was decided instead. Every config error is printed as
 * file:line:col: key: message. Exit 0 valid, 1 a test failed, 2 invalid.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { parse } from 'yaml'
import { ConfigError, PortcullisError, formatConfigIssue } from '../errors.js'
import { formatTestLine } from '../lifecycle/policy-tests.js'
import { runTestsFile, type PolicyTestOutcome } from '../runtime/policy-tests.js'
import { policyWarnings } from '../runtime/startup-checks.js'
import { workerCountFor } from '../runtime/workers.js'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import type { RuntimeConfig } from '../config/types.js'
import { listRules, type CompiledRule, type RuleIndex } from '../policy/compiled.js'
import { formatHostPattern } from '../policy/host-pattern.js'
import { BUILTIN_PRESETS } from '../config/presets.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliIo, type CliVerb } from './io.js'
import { formatAuthority } from '../net/host.js'

export const run: CliVerb = async (args, io) => {
  const { values } = parseArgs({
    args: [...args],
    options: { config: { type: 'string' }, tests: { type: 'string' } },
    strict: true,
  })
  const file = resolveConfigPath(values.config, io.env)
  const config = await loadOrReport(file, io)
  if (config === null) return EXIT_USAGE
  // What `start` would refuse, check refuses too: workers without Redis, a file it needs.
  try {
    workerCountFor(config)
  } catch (err) {
    if (!(err instanceof PortcullisError)) throw err
    io.stderr(`${file}: ${err.message} (${err.code})\n`)
    return EXIT_USAGE
  }
  const caFile = config.upstream.caFile
  if (caFile !== null && !(await readFile(caFile, 'utf8').then(isPem, () => false))) {
    io.stderr(`${file}: upstream.ca_file ${caFile} cannot be read as PEM certificates (PC_ERR_CA_UNREADABLE)\n`)
    return EXIT_USAGE
  }
  io.stdout(formatSummary(config))
  for (const w of policyWarnings(config)) io.stdout(`warning: ${w.message} (${w.code})\n`)
  io.stdout(formatUserPresets(await readFile(file, 'utf8').catch(() => '')))
  return reportPolicyTests(runTestsFile(config, values.tests), io)
}

function isPem(text: string): boolean {
  return text.includes('-----BEGIN CERTIFICATE-----')
}

/** SPEC §10: each failing test with what was decided instead (exit 1); a tests file that cannot be used exits 2. */
function reportPolicyTests(outcome: PolicyTestOutcome, io: CliIo): number {
  switch (outcome.kind) {
    case 'none':
      io.stdout('policy tests: none (add <config>.tests.yaml beside the config, or set tests_file)\n')
      return EXIT_OK
    case 'unreadable':
      io.stderr(`policy tests: cannot read ${outcome.file} (${outcome.error})\n`)
      return EXIT_USAGE
    case 'invalid':
      for (const p of outcome.problems) io.stderr(`${outcome.file}:${p.line}:${p.col}: ${p.message}\n`)
      io.stderr(`${outcome.file}: ${outcome.problems.length} error(s)\n`)
      return EXIT_USAGE
    case 'ran':
      for (const f of outcome.failures) io.stdout(`FAIL ${formatTestLine(outcome.file, f.test.line, f.message)}\n`)
      io.stdout(
        `policy tests (${outcome.file}): ${outcome.passed} passed${outcome.failures.length > 0 ? `, ${outcome.failures.length} failed` : ''}\n`,
      )
      return outcome.failures.length > 0 ? EXIT_DENIED : EXIT_OK
  }
}

/** The config's own presets (issue 14): name and hosts, as the built-in ones are listed. */
export function formatUserPresets(text: string): string {
  let raw: unknown
  try {
    raw = parse(text, { maxAliasCount: 100 })
  } catch {
    return ''
  }
  const presets = (raw as { presets?: Record<string, unknown> } | null)?.presets
  if (presets === null || typeof presets !== 'object') return ''
  const lines = Object.entries(presets).map(([name, rules]) => {
    const list = Array.isArray(rules) ? (rules as Array<{ host?: unknown; methods?: unknown }>) : []
    const hosts = list.map((r) => `${String(r.host)}${Array.isArray(r.methods) ? ` [${r.methods.join(', ')}]` : ''}`)
    return `  ${name}: ${hosts.join(', ')}`
  })
  return lines.length > 0 ? `user presets (presets:):\n${lines.join('\n')}\n` : ''
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
    `listen: ${formatAuthority(config.listen.host, config.listen.port)}; admin: ${formatAuthority(config.admin.host, config.admin.port)}`,
    `groups (${p.groups?.size ?? 0}):`,
  ]
  for (const [name, index] of p.groups ?? []) lines.push(`  ${name}: ${countRules(index)}`)
  lines.push(`agents (${p.agents.size}):`)
  for (const agent of p.agents.values()) {
    const indexes = p.rules.get(agent.id) ?? []
    const by = [
      agent.tokenSha256 ? 'token' : null,
      agent.sourceCidrs.length > 0 ? `source ${agent.sourceCidrs.map((c) => c.text).join(', ')}` : null,
      agent.sandboxes === true ? 'sandbox credentials' : null,
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
    for (const r of listRules(index)) if (r.effect === effect) hosts.add(formatHostPattern(r.host) + denyScope(r))
  return [...hosts].join(', ')
}

/** A deny rule limited to methods or paths denies only those (issue 14): say so, not the whole host. */
function denyScope(r: CompiledRule): string {
  if (r.effect !== 'deny' || (r.paths === null && r.methods === null)) return ''
  const parts = [
    r.methods === null ? null : [...r.methods].join(', '),
    r.paths === null ? null : `paths ${r.paths.map((p) => p.text).join(', ')}`,
  ]
  return ` (only ${parts.filter((p) => p !== null).join('; ')})`
}
