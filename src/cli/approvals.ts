import { connectAdmin, parseAdminVerbArgs, whoami } from './admin-client.js'
import { EXIT_OK, EXIT_USAGE, terminalSafe, type CliVerb } from './io.js'

interface Listed {
  readonly id: string
  readonly agent: string
  readonly scope: string
  readonly expires_in_s: number
  readonly covers: string
  readonly approved_by: string
  readonly reason: string
}

function left(s: number): string {
  if (s >= 86400) return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`
  if (s >= 3600) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
  return `${Math.floor(s / 60)}m${s % 60}s`
}

/** List current approvals, or revoke one with --revoke ID. */
export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseAdminVerbArgs(args, {
    revoke: { type: 'string' },
    by: { type: 'string' },
  })
  if (positionals.length > 0) {
    io.stderr('usage: portcullis approvals [--revoke ID [--by NAME]] [--json] [--admin URL] [--config F]\n')
    return EXIT_USAGE
  }
  const client = await connectAdmin(values, io.env)
  if (values.revoke) {
    await client.request(
      'DELETE',
      `/api/approvals/${encodeURIComponent(values.revoke)}?by=${encodeURIComponent(values.by ?? whoami(io.env))}`,
    )
    io.stdout(`revoked ${values.revoke}\n`)
    return EXIT_OK
  }
  const { approvals } = await client.request<{ approvals: Listed[] }>('GET', '/api/approvals')
  if (values.json) {
    for (const a of approvals) io.stdout(`${JSON.stringify(a)}\n`)
    return EXIT_OK
  }
  if (approvals.length === 0) {
    io.stdout('no active approvals\n')
    return EXIT_OK
  }
  const rows = [
    ['ID', 'AGENT', 'SCOPE', 'OPENS', 'LEFT', 'BY', 'REASON'],
    // Reason and approver are whatever an admin typed; covers holds a request's path.
    ...approvals.map((a) =>
      [a.id, a.agent, a.scope, a.covers, left(a.expires_in_s), a.approved_by, a.reason].map(terminalSafe),
    ),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  for (const r of rows)
    io.stdout(
      `${r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    )
  return EXIT_OK
}
