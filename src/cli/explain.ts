/**
 * `portcullis explain --agent A [--method M] [--config F] URL`: the decision
 * the running proxy would make, offline. No network I/O ever: names are not
 * resolved; IP-literal hosts and hosts pinned in upstream.resolve are
 * classified like the proxy's resolver does. Active approvals are not applied.
 * Exit 0 allow, 1 deny, 2 usage or config error.
 */
import { parseArgs } from 'node:util'
import type { RuntimeConfig } from '../config/types.js'
import { classifyAddress, isAddressAllowed } from '../net/address-class.js'
import { formatAuthority, isIpLiteral } from '../net/host.js'
import { parseAbsoluteUrl } from '../net/absolute-url.js'
import { effectiveMode } from '../policy/compiled.js'
import { decideConnect } from '../policy/decide.js'
import { decideOffline } from '../lifecycle/decide-offline.js'
import { applyMode } from '../policy/mode.js'
import type { ConnectDecision, Decision, DenyDecision, RequestFacts } from '../policy/types.js'
import { resolveConfigPath } from '../config/load.js'
import { loadOrReport } from './check.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'

const USAGE = 'usage: portcullis explain --agent A [--method M] [--config F] URL\n'

export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { agent: { type: 'string' }, method: { type: 'string' }, config: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [url, ...extra] = positionals
  if (values.agent === undefined || url === undefined || extra.length > 0) {
    const problem =
      values.agent === undefined
        ? '--agent A is missing: the agent whose policy decides (portcullis check lists them)'
        : url === undefined
          ? 'name the URL to explain (e.g. https://registry.npmjs.org/left-pad)'
          : `unexpected argument '${extra[0]}'`
    io.stderr(`portcullis explain: ${problem}\n${USAGE}`)
    return EXIT_USAGE
  }
  const facts = parseTarget(url, values.agent, (values.method ?? 'GET').toUpperCase())
  if (typeof facts === 'string') {
    io.stderr(`portcullis explain: ${facts}\n${USAGE}`)
    return EXIT_USAGE
  }
  const config = await loadOrReport(resolveConfigPath(values.config, io.env), io)
  if (config === null) return EXIT_USAGE
  if (!config.policy.agents.has(facts.agent)) {
    io.stderr(
      `portcullis explain: unknown agent '${facts.agent}' (known: ${[...config.policy.agents.keys()].join(', ')})\n`,
    )
    return EXIT_USAGE
  }
  const result = explain(config, facts)
  io.stdout(formatExplanation(config, facts, result))
  return result.decision.verdict === 'allow' ? EXIT_OK : EXIT_DENIED
}

/** Request facts from a URL, or a message saying why it cannot be explained. */
export function parseTarget(text: string, agent: string, method: string): RequestFacts | string {
  if (!/^[A-Z]+$/.test(method)) return `'${method}' is not an HTTP method`
  const u = parseAbsoluteUrl(text)
  return typeof u === 'string' ? u : { agent, method, ...u }
}

export interface Explanation {
  readonly decision: Decision
  readonly connect: ConnectDecision | null
  /** Addresses checked offline (IP literal or pins), with their class; empty when the name would be resolved by DNS. */
  readonly addresses: readonly { readonly ip: string; readonly cls: string; readonly allowed: boolean }[]
}

/**
 * The proxy's order, as decideOffline composes it: CONNECT decision (https), the request (when
 * intercepted or plain), the address check, then package rules by name; the CONNECT and the
 * addresses are kept for the printout.
 */
export function explain(config: RuntimeConfig, facts: RequestFacts): Explanation {
  const connect = facts.scheme === 'https' ? decideConnect(config.policy, facts) : null
  const d = decideOffline(config, facts)
  const decision: Decision =
    d.verdict === 'allow'
      ? { verdict: 'allow', reason: 'allowed', ruleId: d.rule ?? '-' }
      : { verdict: 'deny', reason: d.reason as DenyDecision['reason'], ruleId: d.rule, detail: d.detail }
  const ips = isIpLiteral(facts.host) !== null ? [facts.host] : (config.upstream.resolve.get(facts.host) ?? [])
  const addresses = ips.map((ip) => ({
    ip,
    cls: classifyAddress(ip),
    allowed: isAddressAllowed(ip, config.upstream.allowPrivate),
  }))
  return { decision, connect, addresses }
}

export function formatExplanation(config: RuntimeConfig, facts: RequestFacts, x: Explanation): string {
  const mode = effectiveMode(config.policy, facts.agent)
  const { wouldDeny } = applyMode(x.decision, mode)
  const target = `${facts.scheme}://${formatAuthority(facts.host, facts.port)}${facts.path}${facts.query ? `?${facts.query}` : ''}`
  const lines = [
    `request: ${facts.method} ${target} (agent ${facts.agent})`,
    `decision: ${x.decision.verdict}`,
    `reason: ${x.decision.reason}`,
    `rule: ${x.decision.ruleId ?? '-'}`,
  ]
  if (x.decision.verdict === 'deny' && x.decision.detail !== undefined) lines.push(`detail: ${x.decision.detail}`)
  if (x.connect !== null) {
    const c = x.connect
    lines.push(`connect: ${c.verdict === 'allow' ? `${c.via} (${c.ruleId})` : `deny ${c.reason} (${c.ruleId ?? '-'})`}`)
  }
  for (const a of x.addresses) lines.push(`address: ${a.ip} ${a.cls}${a.allowed ? '' : ' (blocked)'}`)
  if (x.addresses.length === 0) lines.push('address: resolved by DNS when connecting (not checked offline)')
  lines.push(`mode: ${mode}${wouldDeny ? ' (would deny; audit lets it through)' : ''}`)
  return `${lines.join('\n')}\n`
}
