import { parseArgs } from 'node:util'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { explain, parseExplainUrl } from '../admin/routes/explain.js'
import { classifyAddress, isAddressAllowed } from '../net/address-class.js'
import { isIpLiteral } from '../net/host.js'
import type { RuntimeConfig } from '../config/types.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'

const USAGE = 'usage: portcullis explain --agent A [--method M] [--config F] URL\n'

/** Offline address check: IP literals and pinned names only; anything else is resolved at connect time. */
function addressVerdict(config: RuntimeConfig, host: string): { blocked: string | null; note: string } {
  const addrs = isIpLiteral(host) ? [host] : config.upstream.resolve.get(host)
  if (!addrs) return { blocked: null, note: 'address: resolved by DNS at connect time (private addresses are denied then)' }
  for (const a of addrs) if (!isAddressAllowed(a, config.upstream.allowPrivate)) return { blocked: a, note: `address: ${a} is ${classifyAddress(a)}` }
  return { blocked: null, note: `address: ${addrs.join(', ')} (allowed)` }
}

/** `portcullis explain`: the decision and rule for one request, with no network I/O. */
export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { agent: { type: 'string' }, method: { type: 'string', default: 'GET' }, config: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  })
  const url = positionals[0]
  if (!values.agent || !url || positionals.length > 1) {
    io.stderr(USAGE)
    return EXIT_USAGE
  }
  const config = await loadConfig(resolveConfigPath(values.config, io.env), io.env)
  if (!config.policy.agents.has(values.agent)) {
    io.stderr(`portcullis explain: no agent '${values.agent}' in ${config.file} (agents: ${[...config.policy.agents.keys()].join(', ') || 'none'})\n`)
    return EXIT_USAGE
  }
  const target = parseExplainUrl(url)
  if (!target.ok) {
    io.stderr(`portcullis explain: ${target.error}\n`)
    return EXIT_USAGE
  }
  const method = values.method.toUpperCase()
  let e = explain(config, values.agent, method, target.facts)
  const addr = addressVerdict(config, target.facts.host)
  if (e.decision === 'allow' && addr.blocked !== null) e = { ...e, decision: 'deny', reason: 'denied_private_address', rule: null }
  if (values.json) {
    io.stdout(`${JSON.stringify({ ...e, address: addr.note })}\n`)
  } else {
    io.stdout(`${e.decision.toUpperCase()} ${method} ${url} for agent ${values.agent}\n`)
    io.stdout(`  reason: ${e.reason}\n  rule:   ${e.rule ?? '(none)'}\n`)
    if (e.via) io.stdout(`  https:  the CONNECT would be ${e.via === 'intercept' ? 'intercepted (inner requests decided on their full URL)' : 'tunnelled (spliced, not decrypted)'}\n`)
    if (e.detail) io.stdout(`  detail: ${e.detail}\n`)
    io.stdout(`  mode:   ${e.mode}${e.mode === 'audit' && e.decision === 'deny' ? ' (would deny; audit mode lets it pass)' : ''}\n  ${addr.note}\n`)
  }
  return e.decision === 'allow' ? EXIT_OK : EXIT_DENIED
}
