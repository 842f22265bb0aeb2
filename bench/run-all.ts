/**
 * Every Portcullis benchmark, each proxy beside direct, Squid 5.7 and a bare Node proxy in the same
 * run, on loopback only. The scenarios are in bench/scenarios/, the kit in bench/lib.ts, the report
 * writer in bench/report.ts; this file only starts what the selected rows need and runs them.
 *
 *   npm run bench                          all rows, writes bench/RESULTS.md
 *   npm run bench -- --quick               a smoke run of every row (short rounds, 32 MiB downloads)
 *   npm run bench -- --quick --only c2,w   some rows (a b c c2 d e f f2 g h w); writes bench/out/RESULTS.partial.md
 *
 * Env: BENCH_SECONDS (measure window per contender, default 8, in 8 rounds), BENCH_ONLY (as --only),
 *      BENCH_PROXY_NODE_ARGS (extra node flags for the proxies, e.g. "--cpu-prof --cpu-prof-dir=prof"),
 *      BENCH_PROXY_MAIN (another build of dist/cli/main.js), BENCH_LOG_LEVEL.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  MITM_REF_VERSION,
  squidBinary,
  SQUID_NAMES,
  startBareProxy,
  startMitmRef,
  startOrigin,
  startProxy,
  startRedis,
  startSquid,
  type OriginProc,
  type ProxyYamlOptions,
} from './lib.js'
import { createReport, resultsMarkdown } from './report.js'
import { bulkMethod, runBulk, runInterceptedBulk } from './scenarios/bulk.js'
import { settingsFor, type Ctx, type Env } from './scenarios/context.js'
import { handshakesMethod, runHandshakes } from './scenarios/handshakes.js'
import { idleMethod, runIdle } from './scenarios/idle.js'
import { leafMethod, runDecide, runLeafMint } from './scenarios/in-process.js'
import { keepAliveMethod, runKeepAlive } from './scenarios/keep-alive.js'
import { newTunnelsMethod, runNewTunnels } from './scenarios/new-tunnels.js'
import { plainMethod, runPlain } from './scenarios/plain.js'
import { runWorkers, workersMethod } from './scenarios/workers.js'

const ROOT = resolve(import.meta.dirname, '..')
const OUT = join(ROOT, 'bench', 'out', 'run')
const ROWS = ['a', 'b', 'c', 'c2', 'd', 'e', 'f', 'f2', 'g', 'h', 'w'] as const
const NETWORK_ROWS = new Set(['a', 'b', 'c', 'c2', 'd', 'f', 'f2', 'w'])
const NEW_MITM_HOSTS_MAX = 600

type Stop = () => Promise<void> | void

async function startProxies(
  sel: ReadonlySet<string>,
  origin: OriginProc,
  stops: Stop[],
): Promise<Omit<Env, 'root' | 'out' | 'origin' | 'squid' | 'bare' | 'mitmRef'>> {
  const start = async (name: string, o: Omit<ProxyYamlOptions, 'origin'> = {}) => {
    const dir = join(OUT, name)
    mkdirSync(dir, { recursive: true })
    const p = await startProxy(ROOT, dir, name, { origin, ...o })
    stops.push(() => p.stop())
    return p
  }
  const proxy = await start('proxy', {
    extraMitmHosts: Array.from({ length: NEW_MITM_HOSTS_MAX }, (_, i) => `h${i}.mitm.test`),
  })
  const redis = await startRedis()
  stops.push(() => redis.stop())
  const proxyRedis = await start('proxy-redis', { redisUrl: redis.url })
  const proxyWorkers = sel.has('w') ? await start('proxy-workers', { redisUrl: redis.url, workers: 2 }) : null
  return { proxy, proxyRedis, proxyWorkers, proxyCa: readFileSync(proxy.caCertFile, 'utf8') }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, seconds: { type: 'string' } },
    strict: true,
  })
  const only = (values.only ?? process.env.BENCH_ONLY ?? ROWS.join(',')).split(',').map((x) => x.trim())
  const unknown = only.filter((x) => !(ROWS as readonly string[]).includes(x))
  if (unknown.length > 0) throw new Error(`--only: unknown rows ${unknown.join(', ')} (rows: ${ROWS.join(' ')})`)
  const sel = new Set(only)
  const s = settingsFor(values.quick ?? false, Number(values.seconds ?? process.env.BENCH_SECONDS ?? 8))
  const full = sel.size === ROWS.length && !s.quick
  const startedAt = new Date()
  const avg = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')
  const loadBefore = avg()
  const command = `npm run bench${s.quick ? ' -- --quick' : ''}${sel.size < ROWS.length ? ` ${s.quick ? '' : '-- '}--only ${only.join(',')}` : ''}`
  console.log(`$ ${command}`)
  console.log(
    `  ${cpus().length} cores, node ${process.version}; ${s.rounds} interleaved rounds of ${s.roundMs / 1000} s per contender; load average ${loadBefore}`,
  )
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/cli/main.js missing: run npm run build first')
  rmSync(OUT, { recursive: true, force: true })
  mkdirSync(OUT, { recursive: true })
  const report = createReport()
  const methods: string[] = []
  const stops: Stop[] = []
  let logLines = 0
  try {
    if ([...sel].some((r) => NETWORK_ROWS.has(r) || r === 'e')) {
      const origin = await startOrigin(OUT, ['tunnel.test', 'mitm.test', 'plain.test'])
      stops.push(() => origin.stop())
      const proxies = await startProxies(sel, origin, stops)
      const bare = await startBareProxy(origin.caFile)
      stops.push(() => bare.stop())
      const binary = squidBinary()
      const squid = binary ? await startSquid(binary, SQUID_NAMES, origin.httpPort, origin.httpsPort) : null
      if (squid) stops.push(() => squid.stop())
      else report.problem('Squid is not installed (apt-get install squid): the Squid cells are empty')
      const mitmRef = sel.has('f') || sel.has('c2') ? await startMitmRef(OUT, origin.caFile, ['mitm.test']) : null
      if (mitmRef) stops.push(() => mitmRef.stop())
      const env: Env = { root: ROOT, out: OUT, origin, bare, squid, mitmRef, ...proxies }
      const ctx: Ctx = { env, s, report }
      console.log(
        `  origin pid ${origin.pid}; portcullis pid ${env.proxy.pid} on ${env.proxy.port}, log ${env.proxy.logFile}; squid ${squid ? `pid ${squid.pid}` : 'absent'}; http-mitm-proxy ${MITM_REF_VERSION}`,
      )
      const row = async (on: boolean, method: string, run: () => Promise<unknown>): Promise<void> => {
        if (!on) return
        methods.push(method)
        await run()
      }
      const keepAlive = sel.has('a') || sel.has('f')
      await row(keepAlive, keepAliveMethod(ctx), () => runKeepAlive(ctx, sel.has('a'), sel.has('f')))
      await row(sel.has('b'), newTunnelsMethod(ctx), () => runNewTunnels(ctx))
      await row(sel.has('c') || sel.has('c2'), bulkMethod(ctx), async () => {
        if (sel.has('c')) await runBulk(ctx)
        if (sel.has('c2')) await runInterceptedBulk(ctx)
      })
      await row(sel.has('d'), plainMethod(ctx), () => runPlain(ctx))
      await row(sel.has('f2'), handshakesMethod(ctx), () => runHandshakes(ctx))
      await row(sel.has('w'), workersMethod(ctx), () => runWorkers(ctx))
      // The other processes stop before (e), which measures one fresh proxy's memory.
      for (const stop of stops.splice(1).reverse()) await stop()
      logLines = readFileSync(env.proxy.logFile, 'utf8').split('\n').filter(Boolean).length
      await row(sel.has('e'), idleMethod(ctx), () => runIdle(ctx))
    }
  } finally {
    for (const stop of stops.reverse()) await stop()
  }
  if (sel.has('g') || sel.has('h')) methods.push(leafMethod)
  if (sel.has('g')) await runLeafMint(report)
  const decideOut = sel.has('h') ? await runDecide(ROOT, report) : null
  const seconds = (Date.now() - startedAt.getTime()) / 1000
  const md = resultsMarkdown(report, {
    startedAt,
    seconds,
    rounds: s.rounds,
    roundMs: s.roundMs,
    warmMs: s.warmMs,
    logLines,
    load: { before: loadBefore, after: avg() },
    command,
    methods,
    decideOut,
  })
  const file = full ? join(ROOT, 'bench', 'RESULTS.md') : join(ROOT, 'bench', 'out', 'RESULTS.partial.md')
  writeFileSync(file, md)
  if (decideOut) console.log(decideOut)
  console.log(`  done in ${seconds.toFixed(0)} s; ${file} written`)
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exitCode = 1
})
