/**
 * `portcullis replay --config NEW [--against OLD] [--since 24h] [--until T] [--agent A]
 * [--source admin|redis|FILE] [--fail-on-new-denials] [--json] [--admin URL]` (SPEC §10): the
 * recorded requests decided again, offline, under NEW, with what flips (allow→deny, deny→allow)
 * grouped by agent, host and rule. With `--against OLD` the baseline is OLD's decision for the same
 * facts rather than what the record shows. Exit 1 with `--fail-on-new-denials` when something that
 * passed would now be denied; 2 on usage or config errors, and with `--fail-on-new-denials` when the
 * window held more records than are read (MAX_RECORDS): a gate cannot vouch for what it did not read.
 */
import { resolveConfigPath } from '../config/load.js'
import { replayRecords, MISSING_FACTS, type FlipGroup, type ReplayReport } from '../lifecycle/replay.js'
import { parseAdminVerbArgs } from './admin-client.js'
import { loadOrReport } from './check.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'
import { MAX_RECORDS, readDecisionRecords, RECORD_FLAGS, reportReading } from './record-source.js'
import { timeWindow } from './suggest.js'
import { formatAuthority } from '../net/host.js'

const USAGE =
  'usage: portcullis replay --config NEW [--against OLD] [--since 24h] [--until T] [--agent A] [--source admin|redis|FILE] [--fail-on-new-denials] [--json] [--admin URL]\n'

export const run: CliVerb = async (args, io) => {
  // --config names NEW here, the policy to decide under (the records come from --source).
  const { values, positionals } = parseAdminVerbArgs(args, {
    ...RECORD_FLAGS,
    against: { type: 'string' },
    'fail-on-new-denials': { type: 'boolean', default: false },
  })
  const window = timeWindow(values.since, values.until, '24h')
  if (positionals.length > 0 || typeof window === 'string') {
    io.stderr(
      `portcullis replay: ${typeof window === 'string' ? window : `unexpected argument '${positionals[0]}'`}\n${USAGE}`,
    )
    return EXIT_USAGE
  }
  const next = await loadOrReport(resolveConfigPath(values.config, io.env), io)
  if (next === null) return EXIT_USAGE
  const against = values.against === undefined ? null : await loadOrReport(values.against, io)
  if (values.against !== undefined && against === null) return EXIT_USAGE
  const batch = await readDecisionRecords({
    source: values.source,
    ...window,
    denialsOnly: false,
    agent: values.agent,
    admin: values.admin,
    // The admin API and Redis of the instance running now: OLD's when given.
    configFlag: values.against ?? values.config,
    config: against ?? next,
    env: io.env,
  })
  const gate = values['fail-on-new-denials']
  reportReading(batch, 'replay', io)
  const report = replayRecords(batch.records, next, against)
  const since = window.since === null ? '' : ` since ${window.since.toISOString()}`
  if (values.json)
    io.stdout(
      `${JSON.stringify({ from: batch.from, config: next.file, against: against?.file ?? null, truncated: batch.truncated, unreadable_lines: batch.unreadableLines, ...report }, null, 2)}\n`,
    )
  else io.stdout(formatReplay(report, `${batch.from}${since}`, next.file, against?.file ?? null))
  if (gate && report.totals.allowToDeny > 0) return EXIT_DENIED
  // A gate never passes on records it did not read: the older ones may hold what NEW denies.
  if (gate && batch.truncated) {
    io.stderr(
      `portcullis replay: --fail-on-new-denials cannot pass: the window holds more than ${MAX_RECORDS} records and the older ones were not read; narrow it with --since/--until or --agent\n`,
    )
    return EXIT_USAGE
  }
  return EXIT_OK
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`

function flipLine(g: FlipGroup): string {
  const from =
    g.from.verdict === 'allow' ? `allowed by ${g.from.rule ?? '-'}` : `${g.from.reason} (${g.from.rule ?? '-'})`
  const to = g.to.verdict === 'allow' ? `allowed by ${g.to.rule ?? '-'}` : `${g.to.reason} (${g.to.rule ?? '-'})`
  const paths = g.paths.length > 0 ? `; e.g. ${g.paths.slice(0, 3).join(', ')}` : ''
  return `  ${g.agent}  ${formatAuthority(g.host, g.port)}  ${from} → ${to}  ${plural(g.requests, 'request')} [${g.methods.join(', ')}]${paths}`
}

export function formatReplay(report: ReplayReport, from: string, config: string, against: string | null): string {
  const t = report.totals
  const lines = [
    `replayed ${plural(report.requests, 'request')} (${plural(report.records, 'record')}) from ${from} under ${config}${against ? `, against ${against}` : ', against the recorded decisions'}`,
    '',
    `allow → deny: ${plural(t.allowToDeny, 'request')}`,
    ...report.flips.filter((g) => g.direction === 'allow_to_deny').map(flipLine),
    `deny → allow: ${plural(t.denyToAllow, 'request')}`,
    ...report.flips.filter((g) => g.direction === 'deny_to_allow').map(flipLine),
  ]
  if (report.undetermined.length > 0) {
    lines.push(`undetermined: ${plural(t.undetermined, 'request')} (the record lacks a fact the decision needs)`)
    for (const u of report.undetermined) {
      const paths = u.paths.length > 0 ? `; e.g. ${u.paths.slice(0, 3).join(', ')}` : ''
      lines.push(
        `  ${u.agent}  ${formatAuthority(u.host, u.port)}  ${plural(u.requests, 'request')} [${u.methods.join(', ')}]${paths}: ${MISSING_FACTS[u.missing]}`,
      )
    }
    if (against === null && report.undetermined.some((u) => u.missing === 'query'))
      lines.push('  (--against OLD decides these under both policies for every query they may have had)')
  }
  lines.push(`unchanged: ${plural(t.unchanged, 'request')}`)
  if (t.approved > 0)
    lines.push(
      `allowed by an approval, not re-decided: ${plural(t.approved, 'request')} (approvals are not in the config; --against OLD compares them under both policies)`,
    )
  if (t.skipped > 0)
    lines.push(`not policy decisions (skipped): ${report.skipped.map((s) => `${s.reason} ${s.requests}`).join(', ')}`)
  return `${lines.join('\n')}\n`
}
