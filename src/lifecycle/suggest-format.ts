/**
 * A suggest report as people and programs read it: YAML to paste (per target, comments included),
 * the JSON of `suggest --json` and GET /api/suggest, and the text of `portcullis suggest`. PURE.
 */
import { ruleInline, ruleItem } from './rule-yaml.js'
import { commentFor, type SuggestReport, type TargetSuggestion } from './suggest.js'
import { formatAuthority } from '../net/host.js'

/** The target's rules as a YAML list, each with its comment: what goes under `allow:`. */
export function targetYaml(t: TargetSuggestion, indent = 0): string {
  return t.rules.map((e) => ruleItem(e.rule, indent, commentFor(e))).join('\n')
}

export function reportJson(report: SuggestReport): object {
  return {
    requests: report.requests,
    targets: report.targets.map((t) => ({
      kind: t.target.kind,
      name: t.target.name,
      key: t.target.key,
      requests: t.requests,
      rules: t.rules.map((e) => ({
        rule: e.rule,
        requests: e.requests,
        first_seen: e.firstSeen,
        last_seen: e.lastSeen,
        hosts: e.hosts,
        agents: e.agents,
        warnings: e.warnings,
      })),
      notes: t.notes,
      uncovered: t.uncovered,
      yaml: targetYaml(t),
    })),
    not_suggested: report.notSuggested,
  }
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`

/**
 * Text from a record as one visible line: control characters (a newline or an escape sequence in
 * a host an edited log names) written as `\xNN`/`\uNNNN`, so a record cannot forge report lines
 * or drive the terminal.
 */
function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`
  })
}

export function reportText(report: SuggestReport, from: string): string {
  const lines = [`${plural(report.requests, 'denied request')} from ${from}`]
  if (report.targets.length === 0) lines.push('no rule would help: nothing below is a denial an allow rule lifts')
  for (const t of report.targets) {
    lines.push(
      '',
      `${t.target.kind} ${t.target.name}: ${plural(t.rules.length, 'rule')} for ${plural(t.requests, 'request')}; add under ${t.target.key}:`,
      targetYaml(t, 2),
    )
    for (const n of t.notes) lines.push(`  note: ${n}`)
    for (const u of t.uncovered)
      lines.push(
        `  still denied with these rules: ${u.method} ${formatAuthority(u.host, u.port)}${u.path ?? ''} (${u.reason}, ${u.rule ?? '-'}; request ${u.id})`,
      )
  }
  if (report.notSuggested.length > 0) {
    lines.push('', 'not suggested:')
    for (const n of report.notSuggested) {
      const rules = n.rules.length > 0 ? ` (${n.rules.map(printable).join(', ')})` : ''
      const shown = n.hosts.slice(0, 5).map(printable)
      const hosts = shown.join(', ') + (n.hosts.length > 5 ? `, … ${n.hosts.length - 5} more` : '')
      lines.push(`  ${printable(n.reason)}: ${plural(n.requests, 'request')} to ${hosts}${rules}: ${printable(n.why)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

/** One line per rule, for a summary on stderr (with `--diff`, stdout holds the patch alone). */
export function reportSummary(report: SuggestReport): string {
  const lines = report.targets.flatMap((t) =>
    t.rules.map((e) => `${t.target.kind} ${t.target.name}: ${ruleInline(e.rule)} (${plural(e.requests, 'request')})`),
  )
  return lines.length > 0 ? `${lines.join('\n')}\n` : ''
}
