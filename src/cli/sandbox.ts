import { parseDurationMs } from '../config/duration.js'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { AdminRequestError, PortcullisError } from '../errors.js'
import { parseAuthority } from '../net/host.js'
import {
  issueSandbox,
  parseLabel,
  proxyLines,
  sandboxProxy,
  readSandboxKeys,
  type IssuedSandbox,
} from '../identity/sandbox-issue.js'
import type { Revocation } from '../sandboxes/revocation-store.js'
import type { SeenSandbox } from '../sandboxes/seen.js'
import { connectAdmin, parseAdminVerbArgs, whoami } from './admin-client.js'
import { EXIT_OK, EXIT_USAGE, terminalSafe, type CliIo, type CliVerb } from './io.js'

const USAGE = `usage: portcullis sandbox issue --agent A --ttl 2h [--label k=v]… [--proxy HOST:PORT] [--json]
       portcullis sandbox revoke ID [--reason TEXT] [--by NAME]
       portcullis sandbox list [--json]
  (every form takes --config F; revoke, list and issue without the signing key take --admin URL)
`

/**
 * Sandbox credentials (SPEC §9). `issue` signs offline when the signing key (identity.signing_key_env)
 * is in this environment, else asks the admin API; both print the same fields and the lines to paste
 * into the sandbox. `revoke` and `list` talk to the admin API.
 */
export const run: CliVerb = async (args, io) => {
  const [sub, ...rest] = args
  switch (sub) {
    case 'issue':
      return issue(rest, io)
    case 'revoke':
      return revoke(rest, io)
    case 'list':
      return list(rest, io)
    default:
      io.stderr(USAGE)
      return EXIT_USAGE
  }
}

function usage(io: CliIo, message: string): number {
  io.stderr(`portcullis sandbox: ${message}\n${USAGE}`)
  return EXIT_USAGE
}

async function issue(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseAdminVerbArgs(args, {
    agent: { type: 'string' },
    ttl: { type: 'string' },
    label: { type: 'string', multiple: true, default: [] },
    proxy: { type: 'string' },
  })
  if (positionals.length > 0) return usage(io, `unexpected argument '${positionals[0]}'`)
  if (values.agent === undefined || values.ttl === undefined) return usage(io, 'issue needs --agent and --ttl')
  const ttlMs = parseDurationMs(values.ttl)
  if (ttlMs === null) return usage(io, `--ttl '${values.ttl}' is not a duration like 30m, 2h or 1d`)
  // It goes into the proxy URL the sandbox is given: a name or address and a port, as a CONNECT names them.
  if (values.proxy !== undefined && parseAuthority(values.proxy) === null)
    return usage(io, `--proxy '${values.proxy}' is not HOST:PORT (an IPv6 address in brackets: [::1]:3128)`)
  // No prototype: `--label __proto__=x` is then a label (which the checks refuse), not silently dropped.
  const labels: Record<string, string> = Object.create(null) as Record<string, string>
  for (const text of values.label) {
    const kv = parseLabel(text)
    if (kv === null) return usage(io, `--label '${text}' is not key=value`)
    // One value per key: the last of two silently winning could label a sandbox as nobody meant.
    if (Object.hasOwn(labels, kv[0])) return usage(io, `--label ${kv[0]} is given twice`)
    labels[kv[0]] = kv[1]
  }
  const config = await loadConfig(resolveConfigPath(values.config, io.env), io.env)
  const keys = readSandboxKeys(config.identity, io.env)
  let sandbox: IssuedSandbox
  if (keys.signing !== null) {
    const out = issueSandbox(
      config.policy,
      config.identity.maxSandboxTtlMs,
      keys.signing,
      { agent: values.agent, ttlMs, labels },
      values.proxy !== undefined
        ? { authority: values.proxy, warning: null }
        : sandboxProxy(config.identity, config.listen, config.listen.port),
      Date.now(),
    )
    if (!out.ok) throw new PortcullisError('PC_ERR_USAGE', out.message)
    sandbox = out.sandbox
  } else {
    // A key variable that is set but unusable is a mistake to report, not a reason to ask the API.
    const bad = keys.problems.find((p) => !p.endsWith('is not set'))
    if (bad !== undefined) throw new PortcullisError('PC_ERR_USAGE', bad)
    const client = await connectAdmin(values, io.env)
    const issued = await client
      .request<IssuedSandbox>('POST', '/api/sandboxes', {
        agent: values.agent,
        ttl: values.ttl,
        labels,
        by: whoami(io.env),
      })
      .catch((err: unknown) => {
        throw asIssueRefusal(err)
      })
    // The API addresses the lines to its own listener; --proxy says where the sandbox reaches it.
    if (values.proxy === undefined) sandbox = issued
    else {
      const { warning: _guessed, ...addressed } = issued
      sandbox = { ...addressed, ...proxyLines(issued.user, issued.token, values.proxy) }
    }
  }
  if (sandbox.warning !== undefined) io.stderr(`portcullis sandbox: warning: ${sandbox.warning} (or pass --proxy)\n`)
  io.stdout(values.json ? `${JSON.stringify(sandbox)}\n` : formatIssued(sandbox, keys.signing !== null))
  return EXIT_OK
}

/** What issueSandbox refuses (sandbox-issue.ts): the request's fault, whoever signs it. */
const ISSUE_REFUSALS: ReadonlySet<string> = new Set(['unknown_agent', 'not_a_template', 'bad_ttl', 'bad_labels'])

/**
 * The API refusing what offline signing refuses (an agent that is no template, a ttl past
 * max_sandbox_ttl) is the same usage error, exit 2; anything else stays the request's failure.
 */
function asIssueRefusal(err: unknown): unknown {
  if (!(err instanceof AdminRequestError) || !ISSUE_REFUSALS.has(err.answer?.error ?? '')) return err
  return new PortcullisError('PC_ERR_USAGE', err.answer?.message ?? err.message, { cause: err })
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}

function formatIssued(s: IssuedSandbox, offline: boolean): string {
  const labels = Object.entries(s.labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
  const lines = [
    `id:         ${s.id}`,
    `agent:      ${s.agent}`,
    `user:       ${s.user}`,
    `labels:     ${labels.length > 0 ? labels.join(', ') : '-'}`,
    `expires_at: ${s.expires_at}`,
    `token:      ${s.token}`,
    `proxy_url:  ${s.proxy_url}`,
    '',
    `# the token is shown once (${offline ? 'signed offline' : 'issued by the admin API'}); give the sandbox:`,
    ...Object.entries(s.proxy_env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `# revoke it early with: portcullis sandbox revoke ${s.id}`,
  ]
  return `${lines.join('\n')}\n`
}

async function revoke(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseAdminVerbArgs(args, {
    reason: { type: 'string', default: '' },
    by: { type: 'string' },
  })
  const id = positionals[0]
  if (id === undefined || positionals.length > 1) return usage(io, 'revoke takes one sandbox id')
  const client = await connectAdmin(values, io.env)
  const q = new URLSearchParams({ by: values.by ?? whoami(io.env) })
  if (values.reason) q.set('reason', values.reason)
  const r = await client.request<Revocation & { already?: boolean }>(
    'DELETE',
    `/api/sandboxes/${encodeURIComponent(id)}?${q.toString()}`,
  )
  if (values.json) io.stdout(`${JSON.stringify(r)}\n`)
  else
    io.stdout(
      r.already === true
        ? `sandbox ${r.id} was already revoked at ${r.revoked_at} by ${terminalSafe(r.revoked_by)}\n`
        : `revoked sandbox ${r.id}${r.agent ? ` (agent ${r.agent})` : ''}; its connections close within a second\n`,
    )
  return EXIT_OK
}

async function list(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseAdminVerbArgs(args, {})
  if (positionals.length > 0) return usage(io, `unexpected argument '${positionals[0]}'`)
  const client = await connectAdmin(values, io.env)
  const out = await client.request<{ sandboxes: SeenSandbox[]; revoked: Revocation[]; source: string }>(
    'GET',
    '/api/sandboxes',
  )
  if (values.json) {
    io.stdout(`${JSON.stringify(out)}\n`)
    return EXIT_OK
  }
  const rows = out.sandboxes.map((s) => [
    s.id,
    s.agent ?? '-',
    terminalSafe(
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '-',
    ),
    s.last_seen.replace(/\.\d+Z$/, 'Z'),
    String(s.allowed),
    String(s.denied),
    s.state,
  ])
  const header = ['SANDBOX', 'AGENT', 'LABELS', 'LAST REQUEST', 'ALLOWED', 'DENIED', 'STATE']
  if (rows.length === 0) io.stdout(`no sandbox seen in the last 24 h (${out.source})\n`)
  else io.stdout(table([header, ...rows]))
  if (out.revoked.length > 0) {
    io.stdout(`\nrevoked (${out.revoked.length}):\n`)
    io.stdout(
      table([
        ['SANDBOX', 'AGENT', 'REVOKED AT', 'BY', 'KEPT UNTIL'],
        ...out.revoked.map((r) => [r.id, r.agent ?? '-', r.revoked_at, terminalSafe(r.revoked_by), r.expires_at]),
      ]),
    )
  }
  return EXIT_OK
}

function table(rows: readonly string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')}\n`)
    .join('')
}
