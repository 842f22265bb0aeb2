/**
 * What every scenario is given: the processes of this run, the run's settings (full or --quick) and
 * the report; and the undici helpers the keep-alive scenarios share.
 */
import { ProxyAgent, type Dispatcher } from 'undici'
import { LOOPBACK, PROXY_AUTH, roundRatio, type OriginProc, type Outcome, type ProxyProc } from '../lib.js'
import type { Report, Row } from '../report.js'

export interface Settings {
  readonly quick: boolean
  readonly rounds: number
  readonly roundMs: number
  readonly warmMs: number
  readonly keepAliveConns: number
  readonly newConnConcurrency: number
  readonly bulkBytes: number
  readonly idleTunnels: number
  readonly newMitmHosts: number
}

/** Full: BENCH_SECONDS (default 8) per contender in 8 rounds. Quick: a smoke run that proves each row works. */
export function settingsFor(quick: boolean, seconds: number): Settings {
  const measureMs = Math.min(Math.max(seconds || 8, 2), 20) * 1000
  return quick
    ? {
        quick,
        rounds: 2,
        roundMs: 1000,
        warmMs: 300,
        keepAliveConns: 16,
        newConnConcurrency: 8,
        bulkBytes: 32 << 20,
        idleTunnels: 300,
        newMitmHosts: 100,
      }
    : {
        quick,
        rounds: 8,
        roundMs: measureMs / 8,
        warmMs: 1000,
        keepAliveConns: 16,
        newConnConcurrency: 8,
        bulkBytes: 256 << 20,
        idleTunnels: 6000,
        newMitmHosts: 600,
      }
}

export interface SquidProc {
  readonly port: number
  readonly pid: number
}

export interface Env {
  readonly root: string
  readonly out: string
  readonly origin: OriginProc
  readonly proxy: ProxyProc
  /** The same config plus telemetry.redis.url: every record also goes to a Redis stream (1 worker). */
  readonly proxyRedis: ProxyProc
  /** The Redis config with `workers: 2` (row w only). */
  readonly proxyWorkers: ProxyProc | null
  readonly bare: { readonly port: number; readonly pid: number; readonly caPem: string | null }
  readonly squid: SquidProc | null
  readonly mitmRef: { readonly port: number; readonly pid: number; readonly caPem: string } | null
  readonly proxyCa: string
}

export interface Ctx {
  readonly env: Env
  readonly s: Settings
  readonly report: Report
}

export const TIMEOUTS = { headersTimeout: 10_000, bodyTimeout: 10_000 }

/** One request; the body is read and dropped; anything but 200 is an error naming the decision. */
export async function get(d: Dispatcher, opts: Dispatcher.RequestOptions): Promise<void> {
  const res = await d.request(opts)
  await res.body.dump({ limit: 1 << 20 })
  if (res.statusCode !== 200)
    throw new Error(
      `${opts.method} ${opts.origin?.toString() ?? ''}${opts.path}: HTTP ${res.statusCode} ${String(res.headers['x-portcullis-decision'] ?? '')}`,
    )
}

/** undici ProxyAgent through a proxy on loopback: one CONNECT per kept-alive connection. */
export function proxyAgent(port: number, servername: string, ca: string, connections: number): ProxyAgent {
  return new ProxyAgent({
    uri: `http://${LOOPBACK}:${port}`,
    token: PROXY_AUTH,
    connections,
    requestTls: { ca, servername },
    ...TIMEOUTS,
  })
}

/** Squid's cell of a throughput row: its rate, its CPU per operation, and Portcullis ÷ Squid (round medians). */
function versusSquid(portcullis: Outcome, squid: Outcome | undefined): Row['squid'] {
  return squid ? { value: squid.perSecond, cpuUs: squid.cpuUs, vs: roundRatio(portcullis.rounds, squid.rounds) } : null
}

export interface SquidRowOutcomes {
  readonly direct: Outcome
  readonly bare: Outcome
  readonly proxy: Outcome
  readonly squid: Outcome | undefined
}

/**
 * The row of a comparison run with contenders `direct`, `bare`, Portcullis (`proxyName`) and, when
 * installed, `squid`: rates, Portcullis CPU per operation, Portcullis ÷ direct and ÷ Squid (round
 * medians), against the target ≥ 1.0 × Squid. Returns the outcomes for the row's notes.
 */
export function addSquidRow(
  ctx: Ctx,
  m: ReadonlyMap<string, Outcome>,
  row: { readonly id: string; readonly scenario: string; readonly unit: string; readonly proxyName?: string },
): SquidRowOutcomes {
  const o = {
    direct: pick(m, 'direct'),
    bare: pick(m, 'bare'),
    proxy: pick(m, row.proxyName ?? 'proxy'),
    squid: m.get('squid'),
  }
  const sq = versusSquid(o.proxy, o.squid)
  ctx.report.add({
    id: row.id,
    scenario: row.scenario,
    unit: row.unit,
    direct: o.direct.perSecond,
    bare: o.bare.perSecond,
    proxy: o.proxy.perSecond,
    proxyCpuUs: o.proxy.cpuUs,
    ratio: roundRatio(o.proxy.rounds, o.direct.rounds),
    squid: sq,
    target: '≥ 1.0 × Squid',
    met: sq?.vs == null ? null : sq.vs >= 1,
  })
  // What Node itself costs here: the bare proxy (no policy, no records) beside Portcullis and Squid.
  const us = (x: Outcome | undefined): string => (x?.cpuUs == null ? '—' : `${x.cpuUs.toFixed(0)} µs`)
  ctx.report.note(
    `${row.id}: CPU per ${row.unit.replace(/\/s$/, '')}: bare Node proxy ${us(o.bare)}, Portcullis ${us(o.proxy)}, Squid ${us(o.squid)}.`,
  )
  return o
}

/** The named outcome of a comparison (a bug if missing). */
export function pick(m: ReadonlyMap<string, Outcome>, name: string): Outcome {
  const o = m.get(name)
  if (!o) throw new Error(`no outcome for ${name}`)
  return o
}

/** Say so when a contender had errors (the figures stand, but not silently). */
export function reportErrors(ctx: Ctx, what: string, m: ReadonlyMap<string, Outcome>): void {
  for (const [name, o] of m)
    if (o.errors > 0) ctx.report.problem(`${what} ${name}: ${o.errors} errors (first: ${o.firstError ?? '?'})`)
}
