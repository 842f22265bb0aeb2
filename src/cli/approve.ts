import { parseDurationMs } from '../config/duration.js'
import { isApprovalTtl } from '../policy/approvals.js'
import { connectAdmin, parseAdminVerbArgs, whoami } from './admin-client.js'
import { EXIT_OK, EXIT_USAGE, terminalSafe, type CliVerb } from './io.js'

const USAGE =
  'usage: portcullis approve REQUEST_ID [--scope exact|host|path-prefix] [--ttl 24h] [--reason TEXT] [--by NAME] [--sandbox-only] [--admin URL] [--config F]\n'

interface ApprovalAnswer {
  readonly id: string
  readonly scope: string
  readonly agent: string
  readonly method: string
  readonly host: string
  readonly port: number
  readonly path: string | null
  readonly expires_at: string
  /** What it opens, in words (policy/approvals.describeApproval). */
  readonly covers: string
  /** An approval in force already opened this request with this scope: this is that one. */
  readonly already?: boolean
  /** ...and its expiry was moved later, to the new ttl's end. */
  readonly extended?: boolean
}

/** The one-line answer: made, or the approval that already opened it (extended or unchanged). */
function describeAnswer(a: ApprovalAnswer): string {
  const opens = `${a.agent} may send ${a.covers} until ${a.expires_at} (scope ${a.scope})`
  if (a.already !== true) return `approved ${a.id}: ${opens}`
  if (a.extended === true) return `already approved by ${a.id}, now extended: ${opens}`
  return `already approved by ${a.id}, unchanged (the new ttl ends no later): ${opens}`
}

/** Turn a blocked request into a scoped, expiring approval through the admin API. */
export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseAdminVerbArgs(args, {
    scope: { type: 'string', default: 'exact' },
    ttl: { type: 'string' },
    reason: { type: 'string', default: '' },
    by: { type: 'string' },
    // A request a sandbox made: approve it for that sandbox alone, not every sandbox of its agent.
    'sandbox-only': { type: 'boolean', default: false },
  })
  const requestId = positionals[0]
  const problem = !requestId
    ? 'name the REQUEST_ID of a blocked request (portcullis blocked lists them)'
    : positionals.length > 1
      ? `unexpected argument '${positionals[1]}'`
      : !['exact', 'host', 'path-prefix'].includes(values.scope)
        ? `--scope '${values.scope}' is not one of exact, host, path-prefix`
        : null
  if (problem !== null) {
    io.stderr(`portcullis approve: ${problem}\n${USAGE}`)
    return EXIT_USAGE
  }
  const ttlMs = values.ttl === undefined ? null : (parseDurationMs(values.ttl) ?? 0)
  if (ttlMs !== null && !isApprovalTtl(ttlMs)) {
    io.stderr(
      `portcullis approve: --ttl '${values.ttl}' is not a duration like 30m, 2h or 7d, from 1s to 90d\n${USAGE}`,
    )
    return EXIT_USAGE
  }
  const client = await connectAdmin(values, io.env)
  const body = {
    request_id: requestId,
    scope: values.scope,
    reason: values.reason,
    approved_by: values.by ?? whoami(io.env),
    ...(values['sandbox-only'] ? { sandbox_only: true } : {}),
    ...(values.ttl ? { ttl: values.ttl } : {}),
  }
  const a = await client.request<ApprovalAnswer>('POST', '/api/approvals', body)
  if (values.json) io.stdout(`${JSON.stringify(a)}\n`)
  else io.stdout(`${terminalSafe(describeAnswer(a))}\n`)
  return EXIT_OK
}
