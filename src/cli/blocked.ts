import { setTimeout as delay } from 'node:timers/promises'
import { isQueryError, parseEventQuery } from '../admin/event-query.js'
import { PortcullisError } from '../errors.js'
import type { DecisionRecord, TelemetryRecord } from '../telemetry/events.js'
import {
  connectAdmin,
  createSseParser,
  isTransientAdminError,
  parseAdminVerbArgs,
  type AdminClient,
} from './admin-client.js'
import { EXIT_OK, EXIT_USAGE, terminalSafe, type CliIo, type CliVerb } from './io.js'
import { formatAuthority } from '../net/host.js'

const USAGE =
  'usage: portcullis blocked [--agent A] [--host H] [--reason R] [--sandbox ID] [--label k=v]… [--since 1h] [--limit N] [--follow] [--json] [--admin URL] [--config F]\n'

const COLUMNS = ['TIME', 'AGENT', 'METHOD', 'HOST', 'PATH', 'REASON', 'RULE', 'REQUEST ID'] as const
const MAX_CELL = 60
const BACKOFF_MIN_MS = 250
const BACKOFF_MAX_MS = 5000

/** Terminal-safe, and cut to a cell: record fields may carry odd bytes from a hostile request. */
function clean(text: string, cut = true): string {
  const safe = terminalSafe(text)
  return cut && safe.length > MAX_CELL ? `${safe.slice(0, MAX_CELL - 1)}…` : safe
}

/**
 * A row's cells. The host is never cut: `registry.npmjs.org.aaaa…` would hide the attacker's domain
 * at its end (host names are at most 253 characters anyway).
 */
function cells(r: DecisionRecord): string[] {
  // The stream is open to other writers (a SIEM, a script): a field may be missing or of another type,
  // and such a row shows `-` there rather than stopping the listing.
  const field = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '-')
  const defaultPort = r.scheme === 'https' ? 443 : 80
  const name = field(r.host)
  const host =
    typeof r.host !== 'string' || r.port === defaultPort || typeof r.port !== 'number'
      ? name
      : formatAuthority(name, r.port)
  const repeats = typeof r.repeats === 'number' && r.repeats > 0 ? r.repeats : 0
  return [
    field(r.time).replace(/\.\d+Z$/, 'Z'),
    // A sandbox shows as its proxy user, `<agent>+<sandbox id>`.
    r.sandbox === undefined ? field(r.agent) : `${field(r.agent)}+${field(r.sandbox)}`,
    field(r.method),
    host,
    field(r.path),
    // A record that stands for folded repeats (telemetry/denial-fold.ts) says how many requests it is.
    repeats > 0 ? `${field(r.reason)} ×${repeats + 1}` : field(r.reason),
    field(r.rule),
    field(r.id),
  ].map((cell, i) => clean(cell, COLUMNS[i] !== 'HOST'))
}

/**
 * Column widths from the header and the first batch, and with --follow at least room for what rows
 * usually hold (a followed row arrives after the header is printed). A followed cell wider than its
 * column is cut to it (with …), except the host, which is never cut: the columns stay aligned.
 */
const FOLLOW_WIDTHS = [20, 16, 7, 36, 40, 24, 18, 26]

function widthsOf(rows: readonly string[][], follow: boolean): number[] {
  return COLUMNS.map((h, i) =>
    Math.max(h.length, follow ? (FOLLOW_WIDTHS[i] ?? 0) : 0, ...rows.map((r) => (r[i] ?? '').length)),
  )
}

function formatRow(row: readonly string[], widths: readonly number[]): string {
  const fit = (c: string, i: number): string => {
    const w = widths[i] ?? 0
    return c.length > w && COLUMNS[i] !== 'HOST' ? `${c.slice(0, w - 1)}…` : c
  }
  return `${row.map((c, i) => (i === row.length - 1 ? c : fit(c, i).padEnd(widths[i] ?? 0))).join('  ')}\n`
}

function isDeny(r: TelemetryRecord): r is DecisionRecord {
  return r.event === 'decision' && r.decision === 'deny'
}

interface Printer {
  print(r: DecisionRecord): void
}

function createPrinter(io: CliIo, json: boolean, first: readonly DecisionRecord[], follow: boolean): Printer {
  if (json) return { print: (r) => io.stdout(`${JSON.stringify(r)}\n`) }
  const widths = widthsOf(first.map(cells), follow)
  io.stdout(formatRow([...COLUMNS], widths))
  return { print: (r) => io.stdout(formatRow(cells(r), widths)) }
}

function filterParams(values: {
  agent?: string | undefined
  host?: string | undefined
  reason?: string | undefined
  sandbox?: string | undefined
  label?: string[] | undefined
}): URLSearchParams {
  const p = new URLSearchParams({ decision: 'deny' })
  if (values.sandbox !== undefined) p.set('sandbox', values.sandbox)
  for (const l of values.label ?? []) p.append('label', l)
  if (values.agent !== undefined) p.set('agent', values.agent)
  if (values.host !== undefined) p.set('host', values.host)
  if (values.reason !== undefined) p.set('reason', values.reason)
  return p
}

/**
 * Stream new denials until `signal` aborts. A dropped connection is retried
 * with doubling delay (bounded); an answer that is not a network failure
 * (401, 400 …) ends the command, since retrying cannot fix it.
 */
async function follow(
  client: AdminClient,
  params: URLSearchParams,
  printer: Printer,
  io: CliIo,
  signal: AbortSignal,
): Promise<void> {
  let backoff = BACKOFF_MIN_MS
  while (!signal.aborted) {
    try {
      const body = await client.openStream(`/api/events/stream?${params.toString()}`, signal)
      backoff = BACKOFF_MIN_MS
      const feed = createSseParser((e) => {
        if (e.event === 'dropped')
          io.stderr(
            `portcullis blocked: the stream skipped records (${e.data}); use 'portcullis blocked --since' to see them\n`,
          )
        if (e.event !== 'decision') return
        try {
          const r = JSON.parse(e.data) as TelemetryRecord
          if (isDeny(r)) printer.print(r)
        } catch {
          // A malformed frame is skipped; the next one is independent.
        }
      })
      const decoder = new TextDecoder()
      for await (const chunk of body) feed(decoder.decode(chunk, { stream: true }))
      if (!signal.aborted) io.stderr('portcullis blocked: stream ended; reconnecting\n')
    } catch (err) {
      if (signal.aborted) return
      if (err instanceof PortcullisError && !isTransientAdminError(err)) throw err
      io.stderr(
        `portcullis blocked: stream lost (${err instanceof Error ? err.message : String(err)}); reconnecting in ${backoff} ms\n`,
      )
    }
    await delay(backoff, undefined, { signal }).catch(() => undefined)
    backoff = Math.min(BACKOFF_MAX_MS, backoff * 2)
  }
}

/** The verb with an explicit stop signal (tests pass their own; `run` uses SIGINT). */
export async function runBlocked(args: readonly string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseAdminVerbArgs(args, {
    agent: { type: 'string' },
    host: { type: 'string' },
    reason: { type: 'string' },
    sandbox: { type: 'string' },
    label: { type: 'string', multiple: true },
    since: { type: 'string' },
    limit: { type: 'string' },
    follow: { type: 'boolean', default: false },
  })
  const params = filterParams(values)
  const listParams = new URLSearchParams(params)
  if (values.since !== undefined) listParams.set('since', values.since)
  if (values.limit !== undefined) listParams.set('limit', values.limit)
  // Validate locally with the server's own parser, so a typo is a usage error (exit 2), not a request failure.
  const checked = parseEventQuery(listParams, new Date())
  if (positionals.length > 0 || isQueryError(checked)) {
    io.stderr(
      `portcullis blocked: ${isQueryError(checked) ? checked.error : `unexpected argument '${positionals[0]}'`}\n${USAGE}`,
    )
    return EXIT_USAGE
  }
  const client = await connectAdmin(values, io.env)
  const page = await client.request<{ events: TelemetryRecord[] }>('GET', `/api/events?${listParams.toString()}`)
  const denials = page.events.filter(isDeny).reverse()
  if (denials.length === 0 && !values.json && !values.follow) {
    io.stderr('no denied requests match\n')
    return EXIT_OK
  }
  const printer = createPrinter(io, values.json, denials, values.follow === true)
  for (const r of denials) printer.print(r)
  if (values.follow) await follow(client, params, printer, io, signal)
  return EXIT_OK
}

export const run: CliVerb = async (args, io) => {
  const ctl = new AbortController()
  // Only --follow runs until interrupted; otherwise Ctrl-C keeps its default meaning.
  if (!args.includes('--follow')) return runBlocked(args, io, ctl.signal)
  const onSigint = (): void => ctl.abort()
  process.once('SIGINT', onSigint)
  try {
    return await runBlocked(args, io, ctl.signal)
  } finally {
    process.off('SIGINT', onSigint)
  }
}
