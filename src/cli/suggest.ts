/**
 * `portcullis suggest [--agent A | --group G] [--since 7d] [--until T] [--source admin|redis|FILE]
 * [--diff] [--json] [--admin URL] [--config F]` (SPEC §10): the smallest rules that would have
 * allowed the denied and `would_deny` requests recorded, per agent or for a group, with counts,
 * first/last seen and warnings. `--diff` prints a unified diff of the config file (comments and
 * layout kept) for a pull request: `portcullis suggest --diff | git apply`. Exit 0; 2 on usage or
 * config errors and when the records cannot be read (Redis, a file that is not a Portcullis log);
 * 1 when the admin API refuses the request.
 */
import { readFile } from 'node:fs/promises'
import { relative } from 'node:path'
import { isQueryError, parseEventQuery } from '../admin/event-query.js'
import { parseConfigText, readDenyFiles, resolveConfigPath } from '../config/load.js'
import type { RuntimeConfig } from '../config/types.js'
import { suggestRules } from '../lifecycle/suggest.js'
import { reportJson, reportSummary, reportText } from '../lifecycle/suggest-format.js'
import { unifiedDiff } from '../lifecycle/unified-diff.js'
import { parseAdminVerbArgs } from './admin-client.js'
import { loadOrReport } from './check.js'
import { EXIT_OK, EXIT_USAGE, type CliIo, type CliVerb } from './io.js'
import { readDecisionRecords, RECORD_FLAGS, reportReading } from './record-source.js'

const USAGE =
  'usage: portcullis suggest [--agent A | --group G] [--since 7d] [--until T] [--source admin|redis|FILE] [--diff] [--json] [--admin URL] [--config F]\n'

/** The time window of `--since`/`--until`, parsed as GET /api/events parses them; or why not. */
export function timeWindow(
  since: string | undefined,
  until: string | undefined,
  defaultSince: string,
): { since: Date | null; until: Date | null } | string {
  const p = new URLSearchParams({ since: since ?? defaultSince })
  if (until !== undefined) p.set('until', until)
  const q = parseEventQuery(p, new Date())
  if (isQueryError(q)) return q.error
  return { since: q.since ?? null, until: q.until ?? null }
}

/** Compile config text as `loadConfig` would (same env, the deny files it names read now). */
export async function compilerFor(
  file: string,
  text: string,
  env: NodeJS.ProcessEnv,
): Promise<(t: string) => RuntimeConfig> {
  const denyFiles = await readDenyFiles(text)
  return (t) => parseConfigText(t, file, env, denyFiles)
}

export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseAdminVerbArgs(args, {
    ...RECORD_FLAGS,
    group: { type: 'string' },
    diff: { type: 'boolean', default: false },
  })
  const window = timeWindow(values.since, values.until, '7d')
  const problem =
    positionals.length > 0
      ? `unexpected argument '${positionals[0]}'`
      : values.agent !== undefined && values.group !== undefined
        ? 'give --agent or --group, not both'
        : values.diff && values.json
          ? 'give --diff or --json, not both'
          : typeof window === 'string'
            ? window
            : null
  if (problem !== null || typeof window === 'string') return usage(io, problem ?? '')
  const file = resolveConfigPath(values.config, io.env)
  const config = await loadOrReport(file, io)
  if (config === null) return EXIT_USAGE
  if (values.agent !== undefined && !config.policy.agents.has(values.agent))
    return usage(io, `no agent '${values.agent}' in ${file}`)
  if (values.group !== undefined && !(config.policy.groups?.has(values.group) ?? false))
    return usage(io, `no group '${values.group}' in ${file}`)
  const text = await readFile(file, 'utf8')
  const batch = await readDecisionRecords({
    source: values.source,
    ...window,
    denialsOnly: true,
    agent: values.agent,
    admin: values.admin,
    configFlag: values.config,
    config,
    env: io.env,
  })
  reportReading(batch, 'suggest', io)
  const report = suggestRules({
    config,
    configText: text,
    records: batch.records,
    ...(values.agent !== undefined ? { agent: values.agent } : {}),
    ...(values.group !== undefined ? { group: values.group } : {}),
    compile: await compilerFor(file, text, io.env),
  })
  const since = window.since === null ? '' : ` since ${window.since.toISOString()}`
  if (values.json)
    io.stdout(
      `${JSON.stringify({ from: batch.from, truncated: batch.truncated, unreadable_lines: batch.unreadableLines, ...reportJson(report) }, null, 2)}\n`,
    )
  else if (values.diff) {
    io.stdout(unifiedDiff(text, report.editedText, relative(process.cwd(), file) || file))
    io.stderr(reportSummary(report) || `no rules to suggest from ${batch.from}${since}\n`)
  } else io.stdout(reportText(report, `${batch.from}${since}`))
  return EXIT_OK
}

function usage(io: CliIo, problem: string): number {
  io.stderr(`${problem ? `portcullis suggest: ${problem}\n` : ''}${USAGE}`)
  return EXIT_USAGE
}
