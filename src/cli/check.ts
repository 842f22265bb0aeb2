import { parseArgs } from 'node:util'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import type { RuntimeConfig } from '../config/types.js'
import type { CompiledRule } from '../policy/compiled.js'
import { formatHostPattern } from '../policy/host-pattern.js'
import { EXIT_OK, type CliVerb } from './io.js'

function describeRule(r: CompiledRule): string {
  const parts = [`${r.effect} ${formatHostPattern(r.host)}`]
  if (r.ports) parts.push(`ports ${[...r.ports].join(',')}`)
  if (r.methods) parts.push(`methods ${[...r.methods].join(',')}`)
  if (r.paths) parts.push(`${r.paths.length} path pattern${r.paths.length === 1 ? '' : 's'}`)
  if (r.interceptNever) parts.push('intercept: never')
  return parts.join(', ')
}

function limitText(n: number | null): string {
  return n === null ? 'unlimited' : String(n)
}

/** The policy as an operator reads it: who each agent is, what it may reach, and how. */
export function summarizePolicy(c: RuntimeConfig): string {
  const p = c.policy
  const lines = [
    `config: ${c.file}`,
    `listen ${c.listen.host}:${c.listen.port}, admin ${c.admin.host}:${c.admin.port}, mode ${p.mode}, tls.intercept ${p.intercept}, default ports ${[...p.defaultPorts].join(',')}`,
    `${p.agents.size} agent${p.agents.size === 1 ? '' : 's'}:`,
  ]
  for (const a of p.agents.values()) {
    const ident = [a.tokenSha256 ? 'token' : null, a.sourceCidrs.length ? `source ${a.sourceCidrs.map((x) => x.text).join(',')}` : null].filter(Boolean).join(' + ')
    lines.push(`  ${a.id}: identified by ${ident}; groups [${a.groups.join(', ')}]; mode ${a.mode}; limits rpm ${limitText(a.limits.requestsPerMinute)}, conns ${limitText(a.limits.concurrentConnections)}, bytes/day ${limitText(a.limits.bytesPerDay)}`)
    const seen = new Map<string, string[]>()
    for (const index of p.rules.get(a.id) ?? []) {
      for (const list of [...index.exact.values(), ...index.wildcard.values(), index.cidr]) {
        for (const r of list) {
          const l = seen.get(r.id) ?? []
          l.push(describeRule(r))
          seen.set(r.id, l)
        }
      }
    }
    for (const [id, rs] of [...seen.entries()].sort()) lines.push(`    ${id}: ${rs.join('; ')}`)
  }
  return `${lines.join('\n')}\n`
}

/** `portcullis check`: load and compile only (smokescreen's check_config); errors print file:line:col. */
export const run: CliVerb = async (args, io) => {
  const { values } = parseArgs({ args: [...args], options: { config: { type: 'string' } }, strict: true })
  const config = await loadConfig(resolveConfigPath(values.config, io.env), io.env)
  io.stdout(summarizePolicy(config))
  io.stdout('config OK\n')
  return EXIT_OK
}
