/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): top functions by self
 * time and by inclusive time, with file:line. Used to find where the proxy
 * spends its CPU under bench load:
 *
 *   BENCH_ONLY=d BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=bench/out/prof" node --import tsx bench/run-all.ts
 *   node --import tsx bench/profile-summary.ts bench/out/prof/<file>.cpuprofile [top]
 */
import { readFileSync } from 'node:fs'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const file = process.argv[2]
if (!file) {
  console.error('usage: profile-summary.ts <file.cpuprofile> [top]')
  process.exit(2)
}
const top = Number(process.argv[3] ?? 30) || 30
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const selfUs = new Map<number, number>()
p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
const total = p.timeDeltas.reduce((a, b) => a + b, 0)

const key = (f: CallFrame): string =>
  `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist|src)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}`
const self = new Map<string, number>()
const incl = new Map<string, number>()
for (const [id, us] of selfUs) {
  const n = byId.get(id)
  if (!n) continue
  self.set(key(n.callFrame), (self.get(key(n.callFrame)) ?? 0) + us)
  // Inclusive: count each distinct function once per stack.
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const node = byId.get(cur)
    if (!node) break
    const k = key(node.callFrame)
    if (seen.has(k)) continue
    seen.add(k)
    incl.set(k, (incl.get(k) ?? 0) + us)
  }
}
const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`)
console.log('\n-- self time')
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
console.log('\n-- inclusive time')
for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
