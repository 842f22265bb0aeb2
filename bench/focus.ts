/**
 * One scenario, one or more proxy builds, interleaved: for trying a change to the hot path.
 *
 *   node --import tsx bench/focus.ts d|dw|f|a|b|c2 [seconds] [main.js | bare | squid | floor | floor-http ...]
 *
 * Each main.js (default dist/cli/main.js) is started with the bench config; rounds of 1 s alternate
 * between them; prints req/s and proxy CPU µs/op per build (medians over rounds). With two builds or
 * more, each runs as two processes started in mirrored order (A B … B A), half the rounds each: the
 * process started second measured ~8 % slower than the first whatever its build, and the mirror
 * cancels that. `floor` and `floor-http` (d only) are bench/floor-proxy.ts: what forwarding a plain GET
 * costs with the proxy's own upstream client and nothing else, behind raw sockets or node:http; `floor`
 * also splices CONNECT tunnels (a, b) behind raw sockets: the least a Node proxy can spend on them. c2 is one 64 MiB (BENCH_BULK_MIB=n: n MiB)
 * download through an intercepted tunnel per round (ops = MB, so µs/op is µs per MB).
 * BENCH_FOCUS_TRACE=strace|perf adds a round per process under strace -c or perf record.
 */
import { join, resolve } from 'node:path'
import { mkdirSync, rmSync, symlinkSync } from 'node:fs'
import { Pool, ProxyAgent } from 'undici'
import {
  bulkGet,
  getAndClose,
  cpuMs,
  loadLoop,
  LOOPBACK,
  openTunnel,
  PROXY_AUTH,
  squidBinary,
  SQUID_NAMES,
  startBareProxy,
  startFloorProxy,
  startOrigin,
  startProxy,
  startRedis,
  startSquid,
  tlsHandshake,
} from './lib.js'
import { runWrk } from './lib/load.js'
import { wrkProxyScript } from './lib/stats.js'
import { get } from './scenarios/context.js'

const ROOT = resolve(import.meta.dirname, '..')
const OUT = join(ROOT, 'bench', 'out', 'focus')
const scenario = process.argv[2] ?? 'd'
const seconds = Math.min(Number(process.argv[3] ?? 6) || 6, 30)
const mains = process.argv.slice(4).length > 0 ? process.argv.slice(4) : [join(ROOT, 'dist/cli/main.js')]

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true })
  const origin = await startOrigin(OUT, ['tunnel.test', 'mitm.test'])
  const proxies: { port: number; pid: number; caCertFile?: string; caPem?: string | null; stop(): Promise<void> }[] = []
  const stops: (() => Promise<void>)[] = []
  try {
    // Which build each process runs: mirrored start order when builds are compared.
    const buildOf = mains.length > 1 ? [...mains.keys(), ...[...mains.keys()].reverse()] : [0]
    for (const [i, b] of buildOf.entries()) {
      const m = mains[b] as string
      if (m === 'bare') {
        proxies.push(await startBareProxy(origin.caFile))
        continue
      }
      if (m === 'floor' || m === 'floor-http') {
        // Plain GETs only (d): the proxy's upstream client behind raw sockets or node:http, nothing else.
        if (!['d', 'dw', 'a', 'b'].includes(scenario) || (m === 'floor-http' && !scenario.startsWith('d')))
          throw new Error(`${m} forwards plain GETs (d) and, behind raw sockets, CONNECT (a, b)`)
        proxies.push(await startFloorProxy(m === 'floor' ? 'net' : 'http'))
        continue
      }
      if (m === 'squid') {
        // The yardstick, as bench/run-all.ts starts it (CONNECT and plain rows only: it does not intercept).
        const bin = squidBinary()
        if (bin === null) throw new Error('squid is not installed (apt-get install squid)')
        proxies.push(await startSquid(bin, SQUID_NAMES, origin.httpPort, origin.httpsPort))
        continue
      }
      // "warn::path/main.js" runs that build at log level warn (records off) to price logging.
      // "null::path" logs to /dev/null instead of a file; "redis::path" adds the Redis sink (own redis-server);
      // "--flag,--flag::path" runs that build with those node flags (and "--flag,redis::path" with Redis);
      // "mixed::path" (or "--flag,mixed::path") is
      // warmed with intercepted GETs first.
      const [prefix, file] = m.includes('::') ? m.split('::') : [undefined, m]
      process.env.BENCH_PROXY_MAIN = file
      const words = prefix?.split(',') ?? []
      const flags = prefix?.startsWith('--') ? words.filter((f) => f !== 'mixed' && f !== 'redis') : []
      if (prefix && prefix !== 'null' && prefix !== 'redis' && prefix !== 'mixed' && flags.length === 0)
        process.env.BENCH_LOG_LEVEL = prefix
      else delete process.env.BENCH_LOG_LEVEL
      rmSync(join(OUT, `p${i}.log`), { force: true })
      if (prefix === 'null') symlinkSync('/dev/null', join(OUT, `p${i}.log`))
      const redis = words.includes('redis') ? await startRedis() : null
      if (redis) stops.push(async () => redis.stop())
      proxies.push(await startProxy(ROOT, OUT, `p${i}`, { origin, ...(redis ? { redisUrl: redis.url } : {}) }, flags))
    }
    const fs = await import('node:fs')
    const bulk = (p: (typeof proxies)[number]) => async (): Promise<{ ops: number; perSecond: number }> => {
      const authority = `mitm.test:${origin.httpsPort}`
      const ca = p.caPem ?? (p.caCertFile ? fs.readFileSync(p.caCertFile, 'utf8') : '')
      const sock = await tlsHandshake(await openTunnel(p.port, authority), { servername: 'mitm.test', ca })
      const r = await bulkGet(sock, authority, Number(process.env.BENCH_BULK_MIB ?? 64) * 2 ** 20, 120_000)
      return { ops: r.bytes / 1e6, perSecond: r.bytes / 1e6 / r.seconds }
    }
    const plainHost = `plain.test:${origin.httpPort}`
    const wrkScript = wrkProxyScript(`http://${plainHost}/`, { Host: plainHost, 'Proxy-Authorization': PROXY_AUTH })
    const round = async (i: number): Promise<{ ops: number; perSecond: number }> => {
      if (scenario === 'c2') return bulk(proxies[i]!)()
      if (scenario === 'dw') {
        // d as the full bench drives it: wrk, a C load generator in its own process.
        const url = `http://${LOOPBACK}:${proxies[i]!.port}/`
        const r = await runWrk({ url, connections: 16, script: wrkScript }, 1)
        return { ops: r.requests, perSecond: r.requests / r.seconds }
      }
      return loadLoop(ops[i]!, { concurrency: scenario === 'b' ? 8 : 16, maxOps: 1e6, maxMs: 1000 })
    }
    const ops = proxies.map((p) => {
      if (scenario === 'd' || scenario === 'dw') {
        const pool = new Pool(`http://${LOOPBACK}:${p.port}`, { connections: 16 })
        const host = `plain.test:${origin.httpPort}`
        return () =>
          get(pool, { path: `http://${host}/`, method: 'GET', headers: { host, 'proxy-authorization': PROXY_AUTH } })
      }
      if (scenario === 'b') {
        const authority = `tunnel.test:${origin.httpsPort}`
        const t = { servername: 'tunnel.test', ca: origin.caPem }
        return async () => getAndClose(await tlsHandshake(await openTunnel(p.port, authority), t), 'tunnel.test')
      }
      const name = scenario === 'f' ? 'mitm.test' : 'tunnel.test'
      const ca = [origin.caPem, p.caPem ?? (p.caCertFile ? fs.readFileSync(p.caCertFile, 'utf8') : '')].filter(Boolean)
      const agent = new ProxyAgent({
        uri: `http://${LOOPBACK}:${p.port}`,
        token: PROXY_AUTH,
        connections: 16,
        requestTls: { ca, servername: name },
      })
      return () => get(agent, { origin: `https://${name}:${origin.httpsPort}`, path: '/', method: 'GET' })
    })
    // BENCH_FOCUS_MIXED=1: first 3 s of intercepted keep-alive GETs through each Portcullis (as the full
    // bench's f row does before d), so the hot path has also seen TLS sockets when the rows are measured.
    // "mixed::path": the same for that build only, to compare warmed and fresh processes interleaved.
    // BENCH_FOCUS_MIXED_HOST=tunnel.test warms with spliced GETs instead (which traffic leaves the cost).
    const warmHost = process.env.BENCH_FOCUS_MIXED_HOST ?? 'mitm.test'
    for (const [i, p] of proxies.entries()) {
      const m = mains[buildOf[i] as number] as string
      if (['squid', 'bare', 'floor', 'floor-http'].includes(m)) continue
      if (process.env.BENCH_FOCUS_MIXED === '1' || /^(mixed|--[^:]*,mixed)(,|::)/.test(m)) {
        const ca = [origin.caPem, p.caPem ?? (p.caCertFile ? fs.readFileSync(p.caCertFile, 'utf8') : '')].filter(
          Boolean,
        )
        const agent = new ProxyAgent({
          uri: `http://${LOOPBACK}:${p.port}`,
          token: PROXY_AUTH,
          connections: 16,
          requestTls: { ca, servername: warmHost },
        })
        const op = () => get(agent, { origin: `https://${warmHost}:${origin.httpsPort}`, path: '/', method: 'GET' })
        await loadLoop(op, { concurrency: 16, maxOps: 1e6, maxMs: 3000 })
        await agent.close()
      }
    }
    for (const [i] of ops.entries()) await round(i)
    const rate: number[][] = mains.map(() => [])
    const cpu: number[][] = mains.map(() => [])
    const rounds = buildOf.length > mains.length ? Math.ceil(seconds / 2) : seconds
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < proxies.length; k++) {
        const i = (k + r) % proxies.length
        const b = buildOf[i] as number
        const c0 = cpuMs(proxies[i]!.pid)
        const res = await round(i)
        rate[b]!.push(res.perSecond)
        cpu[b]!.push(((cpuMs(proxies[i]!.pid) - c0) * 1000) / Math.max(1, res.ops))
      }
    }
    // BENCH_FOCUS_TRACE=strace|perf: one more round per process under `strace -c -f` (printed as system
    // calls per op) or `perf record` (printed as the share of CPU samples per binary: kernel, node, JIT…).
    const trace = process.env.BENCH_FOCUS_TRACE
    if (trace === 'strace' || trace === 'perf') {
      const { spawn, execFileSync } = await import('node:child_process')
      for (const [i, p] of proxies.entries()) {
        const data = join(OUT, `perf-${i}.data`)
        const args =
          trace === 'strace'
            ? ['-c', '-f', '-p', String(p.pid)]
            : ['record', '-F', '1999', '-p', String(p.pid), '-o', data]
        const tracer = spawn(trace, args, { stdio: ['ignore', 'ignore', 'pipe'] })
        let table = ''
        tracer.stderr.on('data', (c: Buffer) => (table += c.toString()))
        await new Promise((r) => setTimeout(r, 300))
        const res = await round(i)
        const exited = new Promise((r) => tracer.once('exit', r))
        tracer.kill('SIGINT')
        await exited
        const name = mains[buildOf[i] as number]
        if (trace === 'strace') {
          const calls = [...table.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/gm)]
            .map((m) => [m[2] as string, Number(m[1]) / Math.max(1, res.ops)] as const)
            .filter(([call, n]) => call !== 'total' && n >= 0.05)
            .sort((x, y) => y[1] - x[1])
          console.log(`${scenario} ${name} syscalls/op: ${calls.map(([c, n]) => `${c} ${n.toFixed(2)}`).join(', ')}`)
        } else {
          const report = execFileSync('perf', ['report', '-i', data, '--stdio', '--sort', 'dso', '-q'], {
            encoding: 'utf8',
          })
          const rows = report
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => /^\d/.test(l))
            .slice(0, 6)
          console.log(`${scenario} ${name} samples by binary: ${rows.map((r) => r.replace(/\s+/g, ' ')).join(', ')}`)
        }
      }
    }
    const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? NaN
    for (const [i, m] of mains.entries())
      console.log(
        `${scenario} ${m}: ${med(rate[i]!).toFixed(0)} req/s, ${med(cpu[i]!).toFixed(0)} µs CPU/op  (rates ${rate[i]!.map((x) => x.toFixed(0)).join(' ')})`,
      )
  } finally {
    for (const p of proxies) await p.stop()
    for (const stop of stops) await stop()
    await origin.stop()
  }
}
main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
