/**
 * What a big npm packument costs the package gate (SPEC §11): a synthetic document the size of
 * `@types/node`'s (thousands of versions, ~10-15 MiB), rewritten under a min_age that withholds the
 * newest versions, inline and through the worker pool. Reports ms per rewrite, the bytes in and out,
 * and the heap and RSS growth while it runs (the memory one rewrite holds).
 * Run: npm run build && node --import tsx bench/packument.ts (the worker runs the built dist/ code:
 * a worker thread does not inherit tsx's loader).
 * Pure CPU on generated data, no I/O; bounded (ROUNDS rewrites of each kind).
 */
import { compilePackageRules } from '../src/packages/rules.js'
import { runRewriteJob } from '../src/packages/rewrite-job.js'

const ROUNDS = 5
const VERSIONS = 6_000
const DAY = 24 * 3600_000

function packument(versions: number): Uint8Array {
  const now = Date.now()
  const doc = {
    name: 'big',
    'dist-tags': { latest: '' },
    versions: {} as Record<string, unknown>,
    time: {} as Record<string, string>,
  }
  for (let i = 0; i < versions; i++) {
    const v = `${Math.floor(i / 100)}.${Math.floor(i / 10) % 10}.${i % 10}`
    doc.versions[v] = {
      name: 'big',
      version: v,
      description: 'x'.repeat(1200),
      dependencies: Object.fromEntries(Array.from({ length: 12 }, (_, k) => [`dep-${k}`, `^${k}.0.0`])),
      dist: {
        tarball: `https://registry.npmjs.org/big/-/big-${v}.tgz`,
        integrity: `sha512-${'A'.repeat(86)}==`,
        shasum: 'f'.repeat(40),
      },
    }
    // The newest 20 versions are a day old: withheld by a 72 h min_age.
    doc.time[v] = new Date(now - (versions - i <= 20 ? DAY : (versions - i) * DAY)).toISOString()
    doc['dist-tags'].latest = v
  }
  return new TextEncoder().encode(JSON.stringify(doc))
}

const compiled = compilePackageRules('npm', {
  deny: [],
  allow: null,
  denyFileLines: [],
  minAgeMs: 72 * 3600_000,
  minAgeExempt: [],
})
if (!compiled.ok) throw new Error('rules')
const rules = compiled.rules
const bytes = packument(VERSIONS)
const mib = (n: number): string => (n / 1024 / 1024).toFixed(1)

function measure(label: string, times: number[], out: number, heapPeak: number, rssPeak: number): void {
  times.sort((a, b) => a - b)
  console.log(
    `${label.padEnd(34)} median ${times[Math.floor(times.length / 2)]?.toFixed(0)} ms, max ${times.at(-1)?.toFixed(0)} ms; ` +
      `in ${mib(bytes.length)} MiB, out ${mib(out)} MiB; heap +${mib(heapPeak)} MiB, rss +${mib(rssPeak)} MiB`,
  )
}

async function main(): Promise<void> {
  for (const format of ['npm_full', 'npm_abbreviated'] as const) {
    const times: number[] = []
    let out = 0
    let heapPeak = 0
    let rssPeak = 0
    for (let i = 0; i < ROUNDS; i++) {
      const heap0 = process.memoryUsage().heapUsed
      const rss0 = process.memoryUsage().rss
      const t0 = performance.now()
      const r = runRewriteJob(bytes, { format, name: 'big', nowMs: Date.now() }, rules)
      times.push(performance.now() - t0)
      const m = process.memoryUsage()
      heapPeak = Math.max(heapPeak, m.heapUsed - heap0)
      rssPeak = Math.max(rssPeak, m.rss - rss0)
      if (r.kind !== 'rewritten') throw new Error(r.kind)
      out = r.body.byteLength
      if (r.withheld.length !== 20) throw new Error(`withheld ${r.withheld.length}`)
    }
    measure(`inline ${format}`, times, out, heapPeak, rssPeak)
  }
  const { createPackumentPool } = (await import(
    new URL('../dist/packages/packument-pool.js', import.meta.url).href
  )) as typeof import('../src/packages/packument-pool.js')
  const pool = createPackumentPool(1, (err) => console.error('worker error', err))
  const times: number[] = []
  let out = 0
  const rss0 = process.memoryUsage().rss
  let rssPeak = 0
  // The event loop stays free while the worker parses: count timer ticks during each rewrite.
  let ticks = 0
  const ticker = setInterval(() => ticks++, 1)
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now()
    const r = await pool.rewrite(bytes.slice(), { format: 'npm_abbreviated', name: 'big', nowMs: Date.now(), rules })
    times.push(performance.now() - t0)
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss - rss0)
    if (r.kind !== 'rewritten') throw new Error(r.kind)
    out = r.body.byteLength
  }
  clearInterval(ticker)
  pool.close()
  measure('worker npm_abbreviated', times, out, 0, rssPeak)
  console.log(`event-loop ticks of 1 ms during ${ROUNDS} worker rewrites: ${ticks} (the loop was free)`)
}

await main()
