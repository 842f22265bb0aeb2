/**
 * One scenario, one or more proxy builds, interleaved: for trying a change to the hot path.
 *
 *   node --import tsx bench/focus.ts d|f|a [seconds] [main.js ...]
 *
 * Each main.js (default dist/cli/main.js) is started with the bench config; rounds of 1 s alternate
 * between them; prints req/s and proxy CPU µs/op per build (medians over rounds).
 */
import { join, resolve } from 'node:path'
import { mkdirSync, rmSync, symlinkSync } from 'node:fs'
import { Pool, ProxyAgent } from 'undici'
import { cpuMs, loadLoop, LOOPBACK, PROXY_AUTH, startBareProxy, startOrigin, startProxy, startRedis } from './lib.js'
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
    for (const [i, m] of mains.entries()) {
      if (m === 'bare') {
        proxies.push(await startBareProxy(origin.caFile))
        continue
      }
      // "warn::path/main.js" runs that build at log level warn (records off) to price logging.
      // "null::path" logs to /dev/null instead of a file; "redis::path" adds the Redis sink (own redis-server).
      const [prefix, file] = m.includes('::') ? m.split('::') : [undefined, m]
      process.env.BENCH_PROXY_MAIN = file
      if (prefix && prefix !== 'null' && prefix !== 'redis') process.env.BENCH_LOG_LEVEL = prefix
      else delete process.env.BENCH_LOG_LEVEL
      rmSync(join(OUT, `p${i}.log`), { force: true })
      if (prefix === 'null') symlinkSync('/dev/null', join(OUT, `p${i}.log`))
      const redis = prefix === 'redis' ? await startRedis() : null
      if (redis) stops.push(async () => redis.stop())
      proxies.push(await startProxy(ROOT, OUT, `p${i}`, { origin, ...(redis ? { redisUrl: redis.url } : {}) }))
    }
    const fs = await import('node:fs')
    const ops = proxies.map((p) => {
      if (scenario === 'd') {
        const pool = new Pool(`http://${LOOPBACK}:${p.port}`, { connections: 16 })
        const host = `plain.test:${origin.httpPort}`
        return () =>
          get(pool, { path: `http://${host}/`, method: 'GET', headers: { host, 'proxy-authorization': PROXY_AUTH } })
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
    for (const op of ops) await loadLoop(op, { concurrency: 16, maxOps: 1e6, maxMs: 1000 })
    const rate: number[][] = proxies.map(() => [])
    const cpu: number[][] = proxies.map(() => [])
    for (let r = 0; r < seconds; r++) {
      for (let k = 0; k < proxies.length; k++) {
        const i = (k + r) % proxies.length
        const c0 = cpuMs(proxies[i]!.pid)
        const res = await loadLoop(ops[i]!, { concurrency: 16, maxOps: 1e6, maxMs: 1000 })
        rate[i]!.push(res.perSecond)
        cpu[i]!.push(((cpuMs(proxies[i]!.pid) - c0) * 1000) / Math.max(1, res.ops))
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
