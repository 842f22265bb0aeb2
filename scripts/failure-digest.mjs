// After a failed tap run: print each failing test file's `not ok` lines with the lines around them,
// last. CI keeps only the tail of a run's output, and tap prints a file's failure where the file ran,
// often thousands of lines before the end; this puts what failed where a reader of the tail sees it.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

// Results older than this run (seconds since the epoch, from scripts/test.sh) are an earlier run's.
const startedMs = Number(process.argv[2] ?? 0) * 1000
const root = new URL('../.tap/test-results/', import.meta.url).pathname
const files = []
const walk = (dir) => {
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) walk(p)
    else if (e.name.endsWith('.tap') && statSync(p).mtimeMs >= startedMs - 1000) files.push(p)
  }
}
walk(root)
let failing = 0
for (const file of files.sort()) {
  const lines = readFileSync(file, 'utf8').split('\n')
  const hits = lines.flatMap((l, i) => (/^\s*not ok /.test(l) ? [i] : []))
  if (hits.length === 0) continue
  failing++
  console.log(`\n=== failed: ${relative(root, file).replace(/\.tap$/, '')} (${hits.length} not ok) ===`)
  let shownTo = -1
  for (const i of hits.slice(0, 8)) {
    const from = Math.max(shownTo + 1, i - 12)
    const to = Math.min(lines.length - 1, i + 25)
    if (from > shownTo + 1 && shownTo >= 0) console.log('    …')
    for (let k = from; k <= to; k++) console.log(lines[k])
    shownTo = to
  }
}
console.log(
  failing === 0
    ? '\nfailure digest: no failing file found in .tap/test-results'
    : `\nfailure digest: ${failing} file(s) failed`,
)
