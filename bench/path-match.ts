/**
 * matchPathPattern cost: typical rule patterns on typical paths, and the adversarial shapes of
 * issue 11 (which took 4.4 s to 65 s with the old backtracking RegExps) on 1 KiB and 8 KiB paths.
 * Run: node --import tsx bench/path-match.ts
 * Pure CPU, no I/O, bounded: each case runs BATCHES batches, each of at most BATCH_MAX matches and
 * stopped early past BATCH_BUDGET_NS, so the whole script takes a few seconds whatever the inputs.
 * Figures are ns per match: median and p99 of per-batch averages; "steps" is the matcher's own
 * work count (matchPathPatternCounted), the figure the unit tests bound.
 */
import { matchPathPattern, matchPathPatternCounted, parsePathPattern } from '../src/policy/path-pattern.js'

const BATCHES = 50
const BATCH_MAX = 2_000
const BATCH_BUDGET_NS = 4_000_000
const KIB = 1024

const TYPICAL: ReadonlyArray<readonly [pattern: string, path: string]> = [
  ['/v1/models', '/v1/models'],
  ['/repos/acme/**', '/repos/acme/widgets/pulls/42/files'],
  ['/v1/*/items', '/v1/store-17/items'],
  ['/repos/*/*/pulls/*', '/repos/acme/widgets/pulls/42'],
  ['/repos/*/*/pulls/*', '/repos/acme/widgets/issues/42'],
  ['/pkg/*-*.*.*.tgz', '/pkg/left-pad-1.3.0.tgz'],
  ['/*/*/info/refs', '/acme/widgets.git/info/refs'],
  ['/a/**/z', '/a/b/c/d/e/z'],
  ['/**/*.tgz', '/registry/@scope/pkg/-/pkg-1.2.3.tgz'],
  ['/**/a/**/a/**/b', '/x/a/y/a/z/b'],
]

// The shapes of issue 11, plus variants that defeat the early exits (the tail matches, so the
// middle must be worked out over the whole path).
const ADVERSARIAL: ReadonlyArray<readonly [pattern: string, build: (bytes: number) => string]> = [
  ['/pkg/*-*.*.*.tgz', (n) => `/pkg/${'-.'.repeat((n - 5) / 2)}`],
  ['/pkg/*-*.*.*.tgz', (n) => `/pkg/${'.'.repeat(n - 9)}.tgz`],
  ['/**/a/**/a/**/b', (n) => '/a'.repeat(n / 2)],
  ['/**/a/**/a/**/b', (n) => `${'/x'.repeat(n / 2 - 2)}/a/b`],
  ['/**/a/**', (n) => '/x'.repeat(n / 2)],
  ['/**/*-*.*.*.tgz/**/z', (n) => `${'/-.-.-.-.-.'.repeat((n - 2) / 11)}/z`],
  ['/*a*a*a*a*b', (n) => `/${'a'.repeat(n - 1)}`],
  ['/a/**/z', (n) => `/a${'/y'.repeat((n - 4) / 2)}/z`],
]

/** The pre-issue-11 matcher (a RegExp per pattern), for the typical rows only: adversarial ones take seconds. */
function compileOldRegex(pattern: string): RegExp {
  const segments = pattern.split('/')
  let src = ''
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] ?? ''
    if (seg === '**') src += i === segments.length - 1 ? '/.*' : '(?:/[^/]+)*'
    else src += `/${seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}`
  }
  return new RegExp(`^${src}$`)
}

let sink = 0

function measure(match: (path: string) => boolean, path: string): { median: number; p99: number } {
  const w0 = process.hrtime.bigint()
  for (let i = 0; i < 200; i++) if (match(path)) sink++ // warm-up
  // Read the clock every `chunk` matches: rarely for fast cases (its cost would count), often for slow ones.
  const chunk = Math.max(1, Math.min(100, Math.round(20_000 / (Number(process.hrtime.bigint() - w0) / 200))))
  const perBatch: number[] = []
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint()
    let n = 0
    let elapsed = 0n
    while (n < BATCH_MAX && elapsed < BATCH_BUDGET_NS) {
      for (let k = 0; k < chunk; k++) if (match(path)) sink++
      n += chunk
      elapsed = process.hrtime.bigint() - t0
    }
    perBatch.push(Number(elapsed) / n)
  }
  perBatch.sort((a, b) => a - b)
  const at = (p: number): number => perBatch[Math.min(perBatch.length - 1, Math.floor(p * perBatch.length))] ?? 0
  return { median: at(0.5), p99: at(0.99) }
}

function row(label: string, path: string, pattern: string, old: boolean): void {
  const parsed = parsePathPattern(pattern)
  if (!parsed.ok) throw new Error(parsed.message)
  const compiled = parsed.pattern
  const counted = matchPathPatternCounted(compiled, path, '')
  const now = measure((p) => matchPathPattern(compiled, p, ''), path)
  let cells = `${label.padEnd(22)} ${String(path.length).padStart(5)} B  ${String(counted.matched).padEnd(5)}`
  cells += ` median ${now.median.toFixed(0).padStart(7)} ns  p99 ${now.p99.toFixed(0).padStart(7)} ns`
  cells += `  steps ${String(counted.steps).padStart(6)}`
  if (old) {
    const re = compileOldRegex(pattern)
    cells += `  (old regex median ${measure((p) => re.test(p), path).median.toFixed(0)} ns)`
  }
  console.log(cells)
}

console.log('reproduce: node --import tsx bench/path-match.ts')
console.log('typical patterns')
for (const [pattern, path] of TYPICAL) row(pattern, path, pattern, true)
console.log('adversarial patterns (issue 11)')
for (const [pattern, build] of ADVERSARIAL)
  for (const bytes of [KIB, 8 * KIB]) row(pattern, build(bytes), pattern, false)
console.log(`(checksum ${sink})`)
