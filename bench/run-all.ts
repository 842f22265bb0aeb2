/**
 * Every Portcullis benchmark, proxy vs direct in the same run, on loopback.
 *
 *   npm run bench        (= npm run build && node --import tsx bench/run-all.ts)
 *
 * Starts bench/origin.ts (HTTP + HTTPS origin, own process) and the real
 * program (`node dist/cli/main.js start --config <generated yaml>`, logging
 * on, output in bench/out/run/*.log), drives load from this process with
 * undici 7 and raw sockets, and writes bench/RESULTS.md. Every scenario is
 * bounded in ops and time; only 127.0.0.1 is ever dialled.
 *
 * Env: BENCH_SECONDS (measure window per contender, default 8, in 8 rounds),
 *      BENCH_PROXY_NODE_ARGS (extra node flags for the proxy, e.g. "--cpu-prof --cpu-prof-dir=prof";
 *        relative to the proxy's working directory, bench/out/run),
 *      BENCH_ONLY (comma list of scenario letters, e.g. "a,d"),
 *      BENCH_SKIP_F2 (with f: keep-alive only, no new-host handshakes, e.g. to profile f alone).
 * Two Portcullis processes run: one as configured, one with a Redis sink (its
 * own redis-server), for the Redis on/off rows.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import { Pool, ProxyAgent, type Dispatcher } from 'undici'
import { benchLeafMint } from './leaf-mint.js'
import {
  bulkGet,
  cpuMs,
  freePorts,
  getAndClose,
  loadLoop,
  LOOPBACK,
  openTunnel,
  percentile,
  PROXY_AUTH,
  proxyYaml,
  rssKiB,
  sleep,
  startOrigin,
  startBareProxy,
  startProxy,
  startRedis,
  startSquid,
  startMitmRef,
  MITM_REF_VERSION,
  squidBinary,
  tlsHandshake,
  within,
  type OriginProc,
  type ProxyProc,
} from './lib.js'

const ROOT = resolve(import.meta.dirname, '..')
const OUT = join(ROOT, 'bench', 'out', 'run')
const MEASURE_MS = Math.min(Math.max(Number(process.env.BENCH_SECONDS ?? 8) || 8, 2), 20) * 1000
const ROUNDS = 8
const ROUND_MS = MEASURE_MS / ROUNDS
const WARM_MS = 1000
const ONLY = new Set((process.env.BENCH_ONLY ?? 'a,b,c,d,e,f,g,h').split(',').map((s) => s.trim()))
const KEEPALIVE_CONNS = 16
const NEW_CONN_CONCURRENCY = 8
const BULK_BYTES = 256 * 1024 * 1024
const IDLE_TUNNELS = 2000
const NEW_MITM_HOSTS = 600
const TIMEOUTS = { headersTimeout: 10_000, bodyTimeout: 10_000 }

interface Row {
  readonly id: string
  readonly scenario: string
  readonly unit: string
  readonly direct: number | null
  /** The same load through bench/bare-proxy.ts (a minimal Node proxy): the floor on this machine. */
  readonly bare: number | null
  /** The same load through Squid 5.7 in the same run (the targets' yardstick), and its ratio to direct. */
  readonly squid?: { readonly value: number; readonly ratio: number | null } | null
  readonly proxy: number
  /** proxy / direct, or null when not a proxy-vs-direct comparison. */
  readonly ratio: number | null
  readonly target: string
  readonly met: boolean | null
  /** Proxy CPU time per operation, µs (null when not measured). */
  readonly proxyCpuUs: number | null
}

const rows: Row[] = []
const notes: string[] = []
const problems: string[] = []

function fmt(n: number | null, unit = ''): string {
  if (n === null || !Number.isFinite(n)) return '—'
  const s = n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)
  return unit ? `${s} ${unit}` : s
}

function addRow(r: Row): void {
  rows.push(r)
  const verdict = r.met === null ? '' : r.met ? '  ok' : '  MISSED'
  const squid = r.squid
    ? `  squid ${fmt(r.squid.value, r.unit).padStart(12)}${r.squid.ratio === null ? '' : ` (${fmt(r.squid.ratio)})`}`
    : ''
  console.log(
    `  ${r.id.padEnd(3)} ${r.scenario.padEnd(46)} direct ${fmt(r.direct, r.unit).padStart(12)}  bare ${fmt(r.bare, r.unit).padStart(12)}${squid}  portcullis ${fmt(r.proxy, r.unit).padStart(12)}  ratio ${fmt(r.ratio).padStart(5)}  target ${r.target}${verdict}${r.proxyCpuUs === null ? '' : `  (proxy CPU ${r.proxyCpuUs.toFixed(0)} µs/op)`}`,
  )
}

interface Contender {
  readonly name: string
  readonly op: () => Promise<unknown>
  /** Process whose CPU time is charged to this contender's ops. */
  readonly pid?: number
}

interface Outcome {
  readonly ops: number
  readonly seconds: number
  readonly perSecond: number
  /** ops/s in each round, in round order (contenders of one round ran back to back). */
  readonly rounds: readonly number[]
  readonly latencies: Float64Array
  readonly cpuUs: number | null
}

/**
 * Warm every contender up, then run ROUNDS rounds of ROUND_MS each,
 * interleaved and rotated, so a burst of other load on this shared machine
 * hits every contender alike; figures are totals over the rounds.
 */
async function compare(
  what: string,
  contenders: readonly Contender[],
  o: { concurrency: number; maxOpsPerRound: number },
): Promise<Map<string, Outcome>> {
  for (const c of contenders)
    await loadLoop(c.op, { concurrency: o.concurrency, maxOps: o.maxOpsPerRound, maxMs: WARM_MS })
  const acc = new Map(
    contenders.map((c) => [
      c.name,
      {
        ops: 0,
        seconds: 0,
        cpuMs: 0,
        rounds: [] as number[],
        lat: [] as Float64Array[],
        errors: 0,
        firstError: null as string | null,
      },
    ]),
  )
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < contenders.length; i++) {
      const c = contenders[(i + round) % contenders.length] as Contender
      const a = acc.get(c.name)
      if (!a) continue
      const c0 = c.pid ? cpuMs(c.pid) : 0
      const r = await loadLoop(c.op, { concurrency: o.concurrency, maxOps: o.maxOpsPerRound, maxMs: ROUND_MS })
      a.cpuMs += c.pid ? cpuMs(c.pid) - c0 : 0
      a.ops += r.ops
      a.seconds += r.seconds
      a.rounds[round] = r.ops / r.seconds
      a.lat.push(r.latencies)
      a.errors += r.errors
      a.firstError ??= r.firstError
    }
  }
  const out = new Map<string, Outcome>()
  for (const c of contenders) {
    const a = acc.get(c.name)
    if (!a) continue
    if (a.errors > 0) problems.push(`${what} ${c.name}: ${a.errors} errors (first: ${a.firstError ?? '?'})`)
    if (a.ops === 0)
      throw new Error(`${what} ${c.name}: no operation succeeded (${a.firstError ?? 'no error recorded'})`)
    const latencies = new Float64Array(a.lat.reduce((n, l) => n + l.length, 0))
    let at = 0
    for (const l of a.lat) {
      latencies.set(l, at)
      at += l.length
    }
    latencies.sort()
    out.set(c.name, {
      ops: a.ops,
      seconds: a.seconds,
      perSecond: a.ops / a.seconds,
      rounds: a.rounds,
      latencies,
      cpuUs: c.pid ? (a.cpuMs * 1000) / a.ops : null,
    })
  }
  return out
}

/**
 * The ratio of two contenders: the median over rounds of (a's ops/s ÷ b's ops/s in the same round).
 * Each round runs the contenders back to back, so a burst of other load on this shared machine
 * moves both sides of a round's ratio alike; the median drops the rounds it hit unevenly.
 */
function roundRatio(a: Outcome, b: Outcome): number {
  const r = a.rounds
    .map((x, i) => x / (b.rounds[i] ?? Number.NaN))
    .filter(Number.isFinite)
    .sort((x, y) => x - y)
  if (r.length === 0) return a.perSecond / b.perSecond
  const mid = Math.floor(r.length / 2)
  return r.length % 2 === 1 ? (r[mid] as number) : ((r[mid - 1] as number) + (r[mid] as number)) / 2
}

function squidCell(m: Map<string, Outcome>, direct: Outcome): Row['squid'] {
  const q = m.get('squid')
  return q ? { value: q.perSecond, ratio: roundRatio(q, direct) } : null
}

function pick(m: Map<string, Outcome>, name: string): Outcome {
  const o = m.get(name)
  if (!o) throw new Error(`no outcome for ${name}`)
  return o
}

async function get(d: Dispatcher, opts: Dispatcher.RequestOptions): Promise<void> {
  const res = await d.request(opts)
  await res.body.dump({ limit: 1 << 20 })
  if (res.statusCode !== 200)
    throw new Error(
      `${opts.method} ${opts.origin?.toString() ?? ''}${opts.path}: HTTP ${res.statusCode} ${String(res.headers['x-portcullis-decision'] ?? '')}`,
    )
}

// ---------------------------------------------------------------- scenarios

interface Env {
  readonly origin: OriginProc
  readonly proxy: ProxyProc
  /** The same config plus telemetry.redis.url: every record also goes to a Redis stream. */
  readonly proxyRedis: ProxyProc
  readonly bare: { port: number; pid: number; caPem: string | null }
  /** Squid 5.7 when installed (bench/lib.ts startSquid), else null. */
  readonly squid: SquidProc | null
  readonly proxyCa: string
  /** http-mitm-proxy (bench/mitm-ref.ts), the interception yardstick, or null when it could not be installed. */
  readonly mitmRef: { readonly port: number; readonly pid: number; readonly caPem: string } | null
}

type SquidProc = { readonly port: number; readonly pid: number }

/** a + f. Keep-alive HTTPS GETs on 16 connections: direct, tunnelled (bare and Portcullis), intercepted. */
async function scenarioKeepAlive(e: Env, withA: boolean, withF: boolean): Promise<void> {
  const proxyAgent = (port: number, servername: string, ca: string): ProxyAgent =>
    new ProxyAgent({
      uri: `http://${LOOPBACK}:${port}`,
      token: PROXY_AUTH,
      connections: KEEPALIVE_CONNS,
      requestTls: { ca, servername },
      ...TIMEOUTS,
    })
  const direct = new Pool(`https://${LOOPBACK}:${e.origin.httpsPort}`, {
    connections: KEEPALIVE_CONNS,
    connect: { ca: e.origin.caPem, servername: 'tunnel.test' },
    ...TIMEOUTS,
  })
  const bare = proxyAgent(e.bare.port, 'tunnel.test', e.origin.caPem)
  const tunnel = proxyAgent(e.proxy.port, 'tunnel.test', e.origin.caPem)
  const tunnelRedis = proxyAgent(e.proxyRedis.port, 'tunnel.test', e.origin.caPem)
  const squid = e.squid ? proxyAgent(e.squid.port, 'tunnel.test', e.origin.caPem) : null
  const mitm = proxyAgent(e.proxy.port, 'mitm.test', e.proxyCa)
  const mitmRef = e.mitmRef && withF ? proxyAgent(e.mitmRef.port, 'mitm.test', e.mitmRef.caPem) : null
  const bareMitm = e.bare.caPem !== null && withF ? proxyAgent(e.bare.port, 'mitm.test', e.bare.caPem) : null
  const tunnelOrigin = `https://tunnel.test:${e.origin.httpsPort}`
  try {
    const contenders: Contender[] = [
      { name: 'direct', op: () => get(direct, { path: '/', method: 'GET', headers: { host: 'tunnel.test' } }) },
      ...(withA
        ? [
            { name: 'bare', op: () => get(bare, { origin: tunnelOrigin, path: '/', method: 'GET' }), pid: e.bare.pid },
            {
              name: 'tunnel',
              op: () => get(tunnel, { origin: tunnelOrigin, path: '/', method: 'GET' }),
              pid: e.proxy.pid,
            },
            {
              name: 'tunnel+redis',
              op: () => get(tunnelRedis, { origin: tunnelOrigin, path: '/', method: 'GET' }),
              pid: e.proxyRedis.pid,
            },
            ...(squid && e.squid
              ? [
                  {
                    name: 'squid',
                    op: () => get(squid, { origin: tunnelOrigin, path: '/', method: 'GET' }),
                    pid: e.squid.pid,
                  },
                ]
              : []),
          ]
        : []),
      ...(withF
        ? [
            {
              name: 'intercept',
              op: () => get(mitm, { origin: `https://mitm.test:${e.origin.httpsPort}`, path: '/', method: 'GET' }),
              pid: e.proxy.pid,
            },
          ]
        : []),
      ...(bareMitm
        ? [
            {
              name: 'bare-intercept',
              op: () => get(bareMitm, { origin: `https://mitm.test:${e.origin.httpsPort}`, path: '/', method: 'GET' }),
              pid: e.bare.pid,
            },
          ]
        : []),
      ...(mitmRef && e.mitmRef
        ? [
            {
              name: 'mitm-ref',
              op: () => get(mitmRef, { origin: `https://mitm.test:${e.origin.httpsPort}`, path: '/', method: 'GET' }),
              pid: e.mitmRef.pid,
            },
          ]
        : []),
    ]
    const m = await compare('keep-alive', contenders, { concurrency: KEEPALIVE_CONNS, maxOpsPerRound: 100_000 })
    const d = pick(m, 'direct')
    if (withA) {
      const b = pick(m, 'bare')
      const p = pick(m, 'tunnel')
      const ratio = roundRatio(p, d)
      addRow({
        id: 'a',
        scenario: 'CONNECT tunnel, keep-alive HTTPS GET',
        unit: 'req/s',
        direct: d.perSecond,
        bare: b.perSecond,
        squid: squidCell(m, d),
        proxy: p.perSecond,
        ratio,
        target: '≥ 0.60',
        met: ratio >= 0.6,
        proxyCpuUs: p.cpuUs,
      })
      notes.push(
        `a: bare proxy CPU ${b.cpuUs?.toFixed(0) ?? '?'} µs/req vs Portcullis ${p.cpuUs?.toFixed(0) ?? '?'} µs/req (pure splicing in both).`,
      )
      redisRow('a-r', 'CONNECT keep-alive: Redis sink on ÷ off', p, pick(m, 'tunnel+redis'))
    }
    if (withF) {
      const p = pick(m, 'intercept')
      const ratio = roundRatio(p, d)
      const ref = m.get('mitm-ref')
      const bareF = m.get('bare-intercept')
      addRow({
        id: 'f',
        scenario: 'intercepted (MITM), keep-alive HTTPS GET',
        unit: 'req/s',
        direct: d.perSecond,
        bare: bareF?.perSecond ?? null,
        proxy: p.perSecond,
        ratio,
        target: '≥ 0.25',
        met: ratio >= 0.25,
        proxyCpuUs: p.cpuUs,
      })
      if (bareF)
        notes.push(
          `f: bare Node MITM (bench/bare-proxy.ts: TLSSocket + node:http + https.request keep-alive, no policy or logging) ${bareF.perSecond.toFixed(0)} req/s, ratio ${roundRatio(bareF, d).toFixed(2)} to direct, ${bareF.cpuUs?.toFixed(0) ?? '?'} µs CPU/op vs Portcullis ${p.cpuUs?.toFixed(0) ?? '?'} µs.`,
        )
      if (ref)
        notes.push(
          `f: http-mitm-proxy ${MITM_REF_VERSION} (the Node MITM proxy the target cites; keep-alive both sides, bench/mitm-ref.ts) ${ref.perSecond.toFixed(0)} req/s, ratio ${roundRatio(ref, d).toFixed(2)} to direct, ${ref.cpuUs?.toFixed(0) ?? '?'} µs CPU/op; Portcullis ÷ http-mitm-proxy = ${roundRatio(p, ref).toFixed(2)}.`,
        )
      const t = m.get('tunnel')
      if (t)
        notes.push(
          `f: intercepted ÷ tunnelled keep-alive = ${(p.perSecond / t.perSecond).toFixed(2)} (${p.perSecond.toFixed(0)} vs ${t.perSecond.toFixed(0)} req/s); p50 latency ${percentile(p.latencies, 50).toFixed(1)} ms intercepted vs ${percentile(t.latencies, 50).toFixed(1)} ms tunnelled, 16 in flight.`,
        )
    }
  } finally {
    await Promise.all([
      direct.close(),
      bare.close(),
      tunnel.close(),
      tunnelRedis.close(),
      mitm.close(),
      squid?.close(),
      mitmRef?.close(),
      bareMitm?.close(),
    ])
  }
}

/** A Redis-on row: the "direct" column is Portcullis without Redis, the proxy column with it; target ≤ 5 % loss (tunnels). */
function redisRow(id: string, scenario: string, off: Outcome, on: Outcome, targeted = true): void {
  const ratio = roundRatio(on, off)
  addRow({
    id,
    scenario,
    unit: 'req/s',
    direct: off.perSecond,
    bare: null,
    proxy: on.perSecond,
    ratio,
    target: targeted ? '≥ 0.95' : '—',
    met: targeted ? ratio >= 0.95 : null,
    proxyCpuUs: on.cpuUs,
  })
  notes.push(
    `${id}: proxy CPU ${off.cpuUs?.toFixed(0) ?? '?'} µs/op without Redis vs ${on.cpuUs?.toFixed(0) ?? '?'} µs/op with the Redis sink (and shared limits) on.`,
  )
}

/** b. A new connection per request: (CONNECT +) TLS handshake + GET + close. */
async function scenarioB(e: Env): Promise<void> {
  const t = { servername: 'tunnel.test', ca: e.origin.caPem }
  const authority = `tunnel.test:${e.origin.httpsPort}`
  const m = await compare(
    'new tunnels',
    [
      { name: 'direct', op: async () => getAndClose(await tlsHandshake(e.origin.httpsPort, t), 'tunnel.test') },
      {
        name: 'bare',
        op: async () => getAndClose(await tlsHandshake(await openTunnel(e.bare.port, authority), t), 'tunnel.test'),
        pid: e.bare.pid,
      },
      {
        name: 'proxy',
        op: async () => getAndClose(await tlsHandshake(await openTunnel(e.proxy.port, authority), t), 'tunnel.test'),
        pid: e.proxy.pid,
      },
      ...(e.squid
        ? [
            {
              name: 'squid',
              op: async () =>
                getAndClose(
                  await tlsHandshake(await openTunnel((e.squid as SquidProc).port, authority), t),
                  'tunnel.test',
                ),
              pid: e.squid.pid,
            },
          ]
        : []),
    ],
    { concurrency: NEW_CONN_CONCURRENCY, maxOpsPerRound: 5000 },
  )
  const d = pick(m, 'direct')
  const b = pick(m, 'bare')
  const p = pick(m, 'proxy')
  const ratio = roundRatio(p, d)
  addRow({
    id: 'b',
    scenario: 'new tunnel + TLS handshake + GET + close',
    unit: 'conn/s',
    direct: d.perSecond,
    bare: b.perSecond,
    squid: squidCell(m, d),
    proxy: p.perSecond,
    ratio,
    target: '≥ 0.80',
    met: ratio >= 0.8,
    proxyCpuUs: p.cpuUs,
  })
  notes.push(
    `b: p50 per connection ${percentile(d.latencies, 50).toFixed(1)} ms direct, ${percentile(b.latencies, 50).toFixed(1)} ms bare, ${percentile(p.latencies, 50).toFixed(1)} ms Portcullis (${NEW_CONN_CONCURRENCY} in flight); proxy CPU per tunnel ${b.cpuUs?.toFixed(0) ?? '?'} µs bare vs ${p.cpuUs?.toFixed(0) ?? '?'} µs Portcullis.`,
  )
}

/** c. 256 MiB through one TLS connection, tunnelled vs direct; best of two interleaved runs each. */
async function scenarioC(e: Env): Promise<void> {
  const t = { servername: 'tunnel.test', ca: e.origin.caPem }
  const authority = `tunnel.test:${e.origin.httpsPort}`
  const run = async (port: number | null, bytes: number): Promise<number> => {
    const sock =
      port !== null
        ? await tlsHandshake(await openTunnel(port, authority), t)
        : await tlsHandshake(e.origin.httpsPort, t)
    const r = await bulkGet(sock, 'tunnel.test', bytes, 30_000)
    return r.bytes / 1e6 / r.seconds
  }
  const best = { direct: 0, bare: 0, proxy: 0, squid: 0 }
  let proxyCpu = 0
  let squidCpu = 0
  for (const port of [null, e.bare.port, e.proxy.port, e.squid?.port ?? null]) await run(port, 16 << 20)
  for (let round = 0; round < 3; round++) {
    best.direct = Math.max(best.direct, await run(null, BULK_BYTES))
    best.bare = Math.max(best.bare, await run(e.bare.port, BULK_BYTES))
    const c0 = cpuMs(e.proxy.pid)
    best.proxy = Math.max(best.proxy, await run(e.proxy.port, BULK_BYTES))
    proxyCpu += cpuMs(e.proxy.pid) - c0
    if (e.squid) {
      const s0 = cpuMs(e.squid.pid)
      best.squid = Math.max(best.squid, await run(e.squid.port, BULK_BYTES))
      squidCpu += cpuMs(e.squid.pid) - s0
    }
  }
  const ratio = best.proxy / best.direct
  const squid = e.squid ? { value: best.squid, ratio: best.squid / best.direct } : null
  addRow({
    id: 'c',
    scenario: '256 MiB download through one tunnel',
    unit: 'MB/s',
    direct: best.direct,
    bare: best.bare,
    squid,
    proxy: best.proxy,
    ratio,
    target: '≥ 0.75',
    met: ratio >= 0.75,
    proxyCpuUs: null,
  })
  const perGiB = (ms: number): string => ((ms / (3 * BULK_BYTES)) * (1 << 30)).toFixed(0)
  notes.push(
    `c: CPU per GiB spliced: Portcullis ${perGiB(proxyCpu)} ms${e.squid ? `, Squid ${perGiB(squidCpu)} ms` : ''} (best of three interleaved runs each).`,
  )
}

/** d. Plain HTTP: absolute-form GETs through the proxy (undici upstream pool) vs the origin directly. */
async function scenarioD(e: Env): Promise<void> {
  const direct = new Pool(`http://${LOOPBACK}:${e.origin.httpPort}`, { connections: KEEPALIVE_CONNS, ...TIMEOUTS })
  const bare = new Pool(`http://${LOOPBACK}:${e.bare.port}`, { connections: KEEPALIVE_CONNS, ...TIMEOUTS })
  const viaProxy = new Pool(`http://${LOOPBACK}:${e.proxy.port}`, { connections: KEEPALIVE_CONNS, ...TIMEOUTS })
  const viaProxyRedis = new Pool(`http://${LOOPBACK}:${e.proxyRedis.port}`, {
    connections: KEEPALIVE_CONNS,
    ...TIMEOUTS,
  })
  const viaSquid = e.squid
    ? new Pool(`http://${LOOPBACK}:${e.squid.port}`, { connections: KEEPALIVE_CONNS, ...TIMEOUTS })
    : null
  const host = `plain.test:${e.origin.httpPort}`
  const absolute = {
    path: `http://${host}/`,
    method: 'GET',
    headers: { host, 'proxy-authorization': PROXY_AUTH },
  } as const
  try {
    const m = await compare(
      'plain HTTP',
      [
        { name: 'direct', op: () => get(direct, { path: '/', method: 'GET', headers: { host } }) },
        { name: 'bare', op: () => get(bare, absolute), pid: e.bare.pid },
        { name: 'proxy', op: () => get(viaProxy, absolute), pid: e.proxy.pid },
        { name: 'proxy+redis', op: () => get(viaProxyRedis, absolute), pid: e.proxyRedis.pid },
        ...(viaSquid && e.squid ? [{ name: 'squid', op: () => get(viaSquid, absolute), pid: e.squid.pid }] : []),
      ],
      { concurrency: KEEPALIVE_CONNS, maxOpsPerRound: 100_000 },
    )
    const d = pick(m, 'direct')
    const b = pick(m, 'bare')
    const p = pick(m, 'proxy')
    const ratio = roundRatio(p, d)
    addRow({
      id: 'd',
      scenario: 'plain-HTTP forward, keep-alive GET',
      unit: 'req/s',
      direct: d.perSecond,
      bare: b.perSecond,
      squid: squidCell(m, d),
      proxy: p.perSecond,
      ratio,
      target: '≥ 0.15',
      met: ratio >= 0.15,
      proxyCpuUs: p.cpuUs,
    })
    for (const q of [50, 99]) {
      const dl = percentile(d.latencies, q)
      const pl = percentile(p.latencies, q)
      addRow({
        id: `d${q}`,
        scenario: `  latency p${q} (16 in flight; ratio = proxy ÷ direct)`,
        unit: 'ms',
        direct: dl,
        bare: percentile(b.latencies, q),
        proxy: pl,
        ratio: pl / dl,
        target: '—',
        met: null,
        proxyCpuUs: null,
      })
    }
    notes.push(
      `d: proxy CPU per forwarded request ${b.cpuUs?.toFixed(0) ?? '?'} µs bare (node:http + keep-alive Agent) vs ${p.cpuUs?.toFixed(0) ?? '?'} µs Portcullis.`,
    )
    // Not a target (the Redis target is for tunnels, row a-r): two records a request make this the sink's worst case.
    redisRow('d-r', 'plain-HTTP forward (2 records/req): Redis sink on ÷ off', p, pick(m, 'proxy+redis'), false)
  } finally {
    await Promise.all([direct.close(), bare.close(), viaProxy.close(), viaProxyRedis.close(), viaSquid?.close()])
  }
}

function ulimit(flag: '-Sn' | '-Hn'): number {
  try {
    return Number(execFileSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim())
  } catch {
    return NaN
  }
}

/** e. Proxy RSS per idle tunnel: a fresh proxy process, then IDLE_TUNNELS tunnels with TLS up and no traffic. */
async function scenarioE(origin: OriginProc): Promise<void> {
  const soft = ulimit('-Sn')
  const hard = ulimit('-Hn')
  // Node raises its own soft limit to the hard limit at start-up; the proxy needs 2 fds per tunnel, this process 1.
  const fdBudget = Math.min(Number.isFinite(hard) ? hard : soft, Number.isFinite(soft) ? Math.max(soft, hard) : hard)
  const n = Math.min(IDLE_TUNNELS, Math.floor((fdBudget - 256) / 2))
  if (n < IDLE_TUNNELS)
    problems.push(`e: ulimit -n (soft ${soft}, hard ${hard}) allows only ${n} tunnels, not ${IDLE_TUNNELS}`)
  const [listenPort = 0, adminPort = 0] = await freePorts(2)
  const proxy = await startProxy(
    ROOT,
    OUT,
    'proxy-idle',
    proxyYaml({
      dir: OUT,
      httpPort: origin.httpPort,
      httpsPort: origin.httpsPort,
      originCaFile: origin.caFile,
      listenPort,
      adminPort,
    }),
    { listenPort, adminPort },
  )
  let pc: IdleRss
  try {
    pc = await idleRss(proxy.port, proxy.pid, n, origin)
  } finally {
    await proxy.stop()
  }
  const bare = await startBareProxy()
  let floor: IdleRss
  try {
    floor = await idleRss(bare.port, bare.pid, n, origin)
  } finally {
    await bare.stop()
  }
  const binary = squidBinary()
  let squid: IdleRss | null = null
  if (binary) {
    const sq = await startSquid(binary, ['tunnel.test'], origin.httpPort, origin.httpsPort)
    try {
      squid = await idleRss(sq.port, sq.pid, n, origin)
    } finally {
      await sq.stop()
    }
  }
  const results = [['Portcullis', pc], ['bare proxy', floor], ...(squid ? [['Squid', squid] as const] : [])] as const
  for (const [who, r] of results)
    if (r.failures > 0) problems.push(`e ${who}: ${r.failures} tunnel opens failed (${r.firstError})`)
  const perTunnel = (pc.after - pc.before) / pc.count
  const squidCellE = squid ? { value: (squid.after - squid.before) / squid.count, ratio: null } : null
  addRow({
    id: 'e',
    scenario: `proxy RSS per idle TLS tunnel (${pc.count} open)`,
    unit: 'KiB',
    direct: null,
    bare: (floor.after - floor.before) / floor.count,
    squid: squidCellE,
    proxy: perTunnel,
    ratio: null,
    target: '≤ 16 KiB',
    met: perTunnel <= 16,
    proxyCpuUs: null,
  })
  notes.push(
    `e: Portcullis VmRSS ${(pc.before / 1024).toFixed(1)} MiB idle (after warm-up) → ${(pc.after / 1024).toFixed(1)} MiB with ${pc.count} idle tunnels (opened in ${pc.openSeconds.toFixed(1)} s, 32 at a time); bare proxy ${(floor.before / 1024).toFixed(1)} → ${(floor.after / 1024).toFixed(1)} MiB with ${floor.count}. No GC is forced, so garbage from the ${pc.count} handshakes still counts; ulimit -n soft ${soft}, hard ${hard} (enough).`,
  )
}

interface IdleRss {
  readonly before: number
  readonly after: number
  readonly count: number
  readonly openSeconds: number
  readonly failures: number
  readonly firstError: string
}

/** Open n tunnels (CONNECT + TLS handshake through them, then silence) via the proxy on port; its VmRSS before and after. */
async function idleRss(port: number, pid: number, n: number, origin: OriginProc): Promise<IdleRss> {
  const t = { servername: 'tunnel.test', ca: origin.caPem }
  const authority = `tunnel.test:${origin.httpsPort}`
  const open: Socket[] = []
  try {
    // Warm-up: the same path 200 times, then closed, so the baseline includes JIT code and pools.
    for (let round = 0; round < 4; round++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, async () => tlsHandshake(await openTunnel(port, authority), t)),
      )
      for (const s of batch) s.destroy()
    }
    await sleep(1500)
    const before = rssKiB(pid)
    const deadline = Date.now() + 60_000
    let failures = 0
    let started = 0
    let firstError = ''
    const worker = async (): Promise<void> => {
      while (started < n && Date.now() < deadline && failures < 20) {
        started++
        try {
          const s = await tlsHandshake(await openTunnel(port, authority), t)
          s.on('error', () => s.destroy())
          open.push(s)
        } catch (err) {
          failures++
          firstError ||= String(err)
        }
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: 32 }, worker))
    const openSeconds = (performance.now() - t0) / 1000
    await sleep(1500)
    return { before, after: rssKiB(pid), count: open.length, openSeconds, failures, firstError }
  } finally {
    for (const s of open) s.destroy()
  }
}

/** f2. Intercepted CONNECT + TLS handshake with the proxy + close: a host whose leaf is cached vs a host seen for the first time. */
async function scenarioF2(e: Env): Promise<void> {
  // Handshake only: no inner request, so nothing goes upstream.
  const handshake = async (host: string): Promise<void> => {
    const s = await tlsHandshake(await openTunnel(e.proxy.port, `${host}:${e.origin.httpsPort}`), {
      servername: host,
      ca: e.proxyCa,
    })
    s.destroy()
  }
  const m = await compare(
    'intercept handshakes',
    [{ name: 'cached', op: () => handshake('mitm.test'), pid: e.proxy.pid }],
    { concurrency: 4, maxOpsPerRound: 5000 },
  )
  const cached = pick(m, 'cached')
  // Every host is new exactly once: no warm-up, and the pinned list bounds the count.
  let next = 0
  const c0 = cpuMs(e.proxy.pid)
  const fresh = await loadLoop(() => handshake(`h${next++}.mitm.test`), {
    concurrency: 4,
    maxOps: NEW_MITM_HOSTS,
    maxMs: 3000,
  })
  const freshCpuUs = ((cpuMs(e.proxy.pid) - c0) * 1000) / Math.max(fresh.ops, 1)
  if (fresh.errors > 0) problems.push(`f2 new host: ${fresh.errors} errors (first: ${fresh.firstError ?? '?'})`)
  if (fresh.ops === 0) throw new Error(`f2 new host: nothing succeeded (${fresh.firstError ?? '?'})`)
  addRow({
    id: 'f2',
    scenario: 'intercept handshake: new host (mint) vs cached',
    unit: 'hs/s',
    direct: cached.perSecond,
    bare: null,
    proxy: fresh.perSecond,
    ratio: fresh.perSecond / cached.perSecond,
    target: '—',
    met: null,
    proxyCpuUs: freshCpuUs,
  })
  notes.push(
    `f2: CONNECT + client TLS handshake with the proxy + close, 4 at a time; "direct" column = a cached leaf (\`mitm.test\`, ${cached.cpuUs?.toFixed(0) ?? '?'} µs proxy CPU each), "Portcullis" column = first use of h<i>.mitm.test (leaf minted; ${fresh.ops} hosts, ${freshCpuUs.toFixed(0)} µs proxy CPU each).`,
  )
}

/** g. Leaf mint in process. */
async function scenarioG(): Promise<void> {
  const m = await benchLeafMint()
  addRow({
    id: 'g',
    scenario: 'leaf cert: cached get vs cold mint (in-process)',
    unit: 'µs',
    direct: m.cachedMeanUs,
    bare: null,
    proxy: m.coldMeanUs,
    ratio: null,
    target: '—',
    met: null,
    proxyCpuUs: null,
  })
  notes.push(
    `g: cold mint p50 ${m.coldP50Us.toFixed(0)} µs, p99 ${m.coldP99Us.toFixed(0)} µs over ${m.coldMints} hosts (≈ ${(1e6 / m.coldMeanUs).toFixed(0)} mints/s on one core); cached get ${m.cachedMeanUs.toFixed(2)} µs over ${m.cachedHits} gets.`,
  )
}

/** h. bench/decide.ts, when a colleague has written it: run as is, output kept verbatim. */
async function scenarioH(): Promise<string | null> {
  const file = join(ROOT, 'bench', 'decide.ts')
  if (!existsSync(file)) return null
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')))
  child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')))
  const code = await within(
    new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
    90_000,
    'bench/decide.ts',
    () => child.kill('SIGKILL'),
  ).catch((err: unknown) => {
    problems.push(`h: ${String(err)}`)
    return null
  })
  if (code !== 0) problems.push(`h: bench/decide.ts exited with ${code}`)
  return `$ node --import tsx bench/decide.ts\n${out.trim()}`
}

// ---------------------------------------------------------------- report

function resultsMarkdown(
  startedAt: Date,
  seconds: number,
  decideOut: string | null,
  logLines: number,
  load: { before: string; after: string },
): string {
  const cpu = cpus()[0]?.model ?? 'unknown'
  const table = [
    '| | scenario | direct | via Portcullis | ratio | target | met | Squid 5.7, same run (ratio) | Portcullis CPU / op | bare Node proxy |',
    '| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.id} | ${r.scenario.trim()} | ${fmt(r.direct, r.unit)} | ${fmt(r.proxy, r.unit)} | ${fmt(r.ratio)} | ${r.target} | ${r.met === null ? '' : r.met ? 'yes' : '**no**'} | ${r.squid ? `${fmt(r.squid.value, r.unit)}${r.squid.ratio === null ? '' : ` (${fmt(r.squid.ratio)})`}` : ''} | ${r.proxyCpuUs === null ? '' : `${r.proxyCpuUs.toFixed(0)} µs`} | ${fmt(r.bare, r.unit)} |`,
    ),
  ].join('\n')
  return `# Benchmarks

Regenerated by \`npm run bench\` (= \`npm run build && node --import tsx bench/run-all.ts\`); do not edit by hand.

- Date: ${startedAt.toISOString()} (whole run ${seconds.toFixed(0)} s)
- Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}
- Node ${process.version}, undici 7 clients; proxy = \`node dist/cli/main.js start --config bench/out/run/proxy.yaml\`, log level info to bench/out/run/proxy.log (${logLines} lines this run)
- Load average (1/5/15 min) at start ${load.before}, at end ${load.after}: other work on the machine (e.g. a test suite) skews absolute figures; contenders are interleaved so it skews them alike.
- Everything on 127.0.0.1: load generator (this process), origin (bench/origin.ts, own process) and proxy (own process) share the same ${cpus().length} cores, so the proxy competes with both ends for CPU. "direct" is the same client against the same origin without any proxy; "bare Node proxy" is bench/bare-proxy.ts (CONNECT → stream.pipeline both ways, absolute-form → node:http keep-alive Agent; no auth, policy or logging): what a straightforward Node proxy reaches here. "Squid 5.7" is Debian's squid (the release the targets were set against) run in the same session with the same clients: one process, access log on, no cache, no auth. Throughputs are totals over ${ROUNDS} rounds of ${ROUND_MS / 1000} s, the contenders interleaved and rotated round by round, after ${WARM_MS / 1000} s of warm-up each; ratios are the median over rounds of the per-round ratio (both sides of a round run back to back, so a burst of other load on the machine moves them alike).

${table}

Ratios are Portcullis ÷ direct (higher is better) except where the row says otherwise; targets are the ones set for logging-on runs. "proxy CPU / op" is the proxy process's user+system CPU (from /proc/<pid>/stat) during the measured window divided by completed operations.

## Method

- **a — CONNECT keep-alive.** ${KEEPALIVE_CONNS} kept-alive HTTPS connections, ${KEEPALIVE_CONNS} requests in flight, \`GET /\` with a 3-byte body; via proxy = undici \`ProxyAgent\` (one CONNECT per connection, Basic proxy auth, SNI tunnel.test, spliced); direct = undici \`Pool\` to the origin.
- **b — new tunnels.** Raw sockets, ${NEW_CONN_CONCURRENCY} at a time: TCP to the proxy, \`CONNECT tunnel.test:<port>\`, 200, full TLS 1.3 handshake to the origin through the tunnel (no session reuse), \`GET /\` with \`Connection: close\`, read to EOF; direct = TLS to the origin + the same GET.
- **c — bulk.** One TLS connection, \`GET /bulk?bytes=268435456\` (origin streams a preallocated 1 MiB buffer), MB/s = 10⁶ bytes/s from request to last byte; best of two interleaved runs each way after a 16 MiB warm-up.
- **d — plain HTTP forward.** undici \`Pool\` with ${KEEPALIVE_CONNS} connections sending absolute-form \`GET http://plain.test:<port>/\` with \`Proxy-Authorization\` to the proxy (undici keep-alive pool upstream) vs the same Pool against the origin; latency rows are per-request times from the same runs (${KEEPALIVE_CONNS} in flight, so they include queueing).
- **e — idle tunnels.** A fresh proxy process; 200 tunnels opened and closed as warm-up, 1.5 s settle, VmRSS; then ${IDLE_TUNNELS} tunnels opened (CONNECT + TLS handshake through the tunnel, then no traffic) 32 at a time, 1.5 s settle, VmRSS; (after − before) ÷ tunnels. Includes the tracker entry, the decision record in the ring buffer and both sockets' buffers.
- **f — interception.** Same as (a) but to \`mitm.test\` (rule with \`paths: ["/**"]\`, so the CONNECT is intercepted); the client trusts the Portcullis CA generated at first start, the proxy verifies the origin with \`upstream.ca_file\`. Measured in the same interleaved set as (a). Its "bare Node proxy" cell is bench/bare-proxy.ts intercepting mitm.test (one leaf made at start, node:http inside, https.request on a keep-alive agent, no policy or logging); http-mitm-proxy ${MITM_REF_VERSION} (bench/mitm-ref.ts: the Node MITM proxy the target cites, keep-alive on both sides, installed into bench/out/mitm-ref on first use) runs in the same rounds, driven by the same client trusting its CA (see the notes). **f2**: CONNECT + TLS handshake with the proxy + close, 4 at a time; cached = \`mitm.test\` every time, new = \`h<i>.mitm.test\` (${NEW_MITM_HOSTS} pinned names, each used once, matched by \`*.mitm.test\`), each needing a fresh leaf.
- **g — leaf mint.** In process: \`createLeafCertCache(loadCa(…))\`, \`get()\` of a never-seen host (forge TBS + native RSA-2048 signature + \`createSecureContext\`) vs a cached host.
- **h — decide.** \`bench/decide.ts\` when present, output below.

${notes.map((n) => `- ${n}`).join('\n')}
${problems.length > 0 ? `\n## Problems seen in this run\n\n${problems.map((p) => `- ${p}`).join('\n')}\n` : ''}
## decide (bench/decide.ts)

${decideOut === null ? 'bench/decide.ts does not exist yet; nothing run.' : `\`\`\`\n${decideOut}\n\`\`\``}
`
}

async function streamLength(url: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  try {
    return await client.xlen('portcullis:bench')
  } finally {
    client.disconnect()
  }
}

async function main(): Promise<void> {
  const startedAt = new Date()
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')
  console.log('$ npm run bench   (node --import tsx bench/run-all.ts)')
  console.log(
    `  ${cpus().length} cores, node ${process.version}; ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per contender; load average ${loadBefore}`,
  )
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/cli/main.js missing: run npm run build first')
  rmSync(OUT, { recursive: true, force: true })
  mkdirSync(OUT, { recursive: true })
  const origin = await startOrigin(OUT, ['tunnel.test', 'mitm.test', 'plain.test'])
  let proxy: ProxyProc | null = null
  let proxyRedis: ProxyProc | null = null
  let redis: { url: string; stop(): void } | null = null
  let bare: { port: number; pid: number; caPem: string | null; stop(): Promise<void> } | null = null
  let squid: { port: number; pid: number; stop(): Promise<void> } | null = null
  let mitmRef: { port: number; pid: number; caPem: string; stop(): Promise<void> } | null = null
  let logLines: number
  let decideOut: string | null = null
  try {
    const mitmHosts = Array.from({ length: NEW_MITM_HOSTS }, (_, i) => `h${i}.mitm.test`)
    const [listenPort = 0, adminPort = 0] = await freePorts(2)
    proxy = await startProxy(
      ROOT,
      OUT,
      'proxy',
      proxyYaml({
        dir: OUT,
        httpPort: origin.httpPort,
        httpsPort: origin.httpsPort,
        originCaFile: origin.caFile,
        extraMitmHosts: mitmHosts,
        listenPort,
        adminPort,
      }),
      { listenPort, adminPort },
    )
    redis = await startRedis()
    const [redisListen = 0, redisAdmin = 0] = await freePorts(2)
    const redisDir = join(OUT, 'redis-proxy')
    mkdirSync(redisDir, { recursive: true })
    proxyRedis = await startProxy(
      ROOT,
      redisDir,
      'proxy-redis',
      proxyYaml({
        dir: redisDir,
        httpPort: origin.httpPort,
        httpsPort: origin.httpsPort,
        originCaFile: origin.caFile,
        listenPort: redisListen,
        adminPort: redisAdmin,
        redisUrl: redis.url,
      }),
      { listenPort: redisListen, adminPort: redisAdmin },
    )
    bare = await startBareProxy(origin.caFile)
    const binary = squidBinary()
    squid = binary ? await startSquid(binary, ['tunnel.test', 'plain.test'], origin.httpPort, origin.httpsPort) : null
    if (!squid) problems.push('Squid is not installed (apt-get install squid): the Squid column is empty')
    if (ONLY.has('f')) {
      try {
        mitmRef = await startMitmRef(join(ROOT, 'bench', 'out'), origin.caFile, ['mitm.test'])
      } catch (err) {
        problems.push(
          `http-mitm-proxy ${MITM_REF_VERSION} could not be installed or started (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): row f has no yardstick`,
        )
      }
    }
    const env: Env = {
      origin,
      proxy,
      proxyRedis,
      bare,
      squid,
      mitmRef,
      proxyCa: readFileSync(proxy.caCertFile, 'utf8'),
    }
    console.log(
      `  origin pid ${origin.pid} (http ${origin.httpPort}, https ${origin.httpsPort}); portcullis pid ${proxy.pid} on ${proxy.port}, log ${proxy.logFile}; bare proxy pid ${bare.pid} on ${bare.port}`,
    )
    if (ONLY.has('a') || ONLY.has('f')) await scenarioKeepAlive(env, ONLY.has('a'), ONLY.has('f'))
    if (ONLY.has('b')) await scenarioB(env)
    if (ONLY.has('c')) await scenarioC(env)
    if (ONLY.has('d')) await scenarioD(env)
    if (ONLY.has('f') && !process.env.BENCH_SKIP_F2) await scenarioF2(env)
    await proxy.stop()
    logLines = readFileSync(proxy.logFile, 'utf8').split('\n').filter(Boolean).length
    proxy = null
    notes.push(
      `Redis stream after the run: ${await streamLength(redis.url)} records from the Redis-on proxy (portcullis:bench).`,
    )
    await proxyRedis.stop()
    proxyRedis = null
    if (ONLY.has('e')) await scenarioE(origin)
  } finally {
    await proxy?.stop()
    await proxyRedis?.stop()
    redis?.stop()
    await bare?.stop()
    await squid?.stop()
    await mitmRef?.stop()
    await origin.stop()
  }
  if (ONLY.has('g')) await scenarioG()
  if (ONLY.has('h')) decideOut = await scenarioH()
  const seconds = (Date.now() - startedAt.getTime()) / 1000
  const md = resultsMarkdown(startedAt, seconds, decideOut, logLines, {
    before: loadBefore,
    after: loadavg()
      .map((l) => l.toFixed(2))
      .join(' / '),
  })
  if (ONLY.size >= 8) writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), md)
  else writeFileSync(join(ROOT, 'bench', 'out', 'RESULTS.partial.md'), md)
  if (decideOut) console.log(decideOut)
  for (const p of problems) console.log(`  problem: ${p}`)
  console.log(
    `  done in ${seconds.toFixed(0)} s; ${ONLY.size >= 8 ? 'bench/RESULTS.md' : 'bench/out/RESULTS.partial.md'} written (proxy log ${statSync(join(OUT, 'proxy.log')).size} bytes)`,
  )
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exitCode = 1
})
