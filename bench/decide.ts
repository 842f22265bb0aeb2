/**
 * decideRequest / decideConnect cost with 10,000 host rules.
 * Run: node --import tsx bench/decide.ts
 * Pure CPU, no I/O, bounded: BATCHES × BATCH_SIZE decisions per function.
 * Figures are ns per decision: median and p99 of per-batch averages, for a
 * warm mix (50 distinct targets) and a cold one (5,000 distinct targets, so
 * most rule data is out of CPU cache). Facts are built fresh per batch, with
 * new host strings, as the proxy builds them per request. Each mix is exact hit, wildcard hit,
 * path hit, path miss (denied_path) and no rule (denied_no_rule).
 */
import { compileConfig } from '../src/config/compile.js'
import { createPlainSource } from '../src/config/issues.js'
import { configSchema } from '../src/config/schema.js'
import type { CompiledPolicy } from '../src/policy/compiled.js'
import { decideConnect, decideRequest } from '../src/policy/decide.js'
import type { ConnectFacts, RequestFacts } from '../src/policy/types.js'

const RULES = 10_000
const BATCHES = 1_000
const BATCH_SIZE = 200

function buildPolicy(): CompiledPolicy {
  const allow: unknown[] = []
  for (let i = 0; i < RULES; i++) {
    if (i % 10 < 5) allow.push({ host: `host${i}.exact.test` })
    else if (i % 10 < 8) allow.push({ host: `*.wild${i}.test`, ports: [443] })
    else
      allow.push({ host: `api${i}.paths.test`, methods: ['GET', 'HEAD'], paths: [`/repos/org${i}/**`, `/v1/*/items`] })
  }
  const raw = configSchema.parse({
    groups: {
      big: {
        allow,
        deny: [{ host: 'host10.exact.test' }, { host: 'api9.paths.test', paths: ['/repos/org9/secret/**'] }],
      },
    },
    agents: [{ id: 'bench', source_cidrs: ['127.0.0.1/32'], groups: ['big'] }],
  })
  return compileConfig(raw, createPlainSource('<bench>')).policy
}

/** `distinct` × 5 facts: exact hit, wildcard hit (depth 2), path hit, path miss, no rule. */
function requestMix(distinct: number): RequestFacts[] {
  const base = { agent: 'bench', method: 'GET', scheme: 'https', port: 443, query: '' } as const
  const out: RequestFacts[] = []
  for (let j = 0; j < distinct; j++) {
    const i = Math.floor((j * 1000) / distinct) // spread over the whole index
    const n = i * 10
    out.push(
      { ...base, host: `host${n + 1}.exact.test`, path: '/' }, // exact hit
      { ...base, host: `a.b.wild${n + 5}.test`, path: '/x' }, // wildcard hit, depth 2
      { ...base, host: `api${n + 8}.paths.test`, path: `/repos/org${n + 8}/r/pulls` }, // path hit
      { ...base, host: `api${n + 9}.paths.test`, path: '/other/path' }, // denied_path
      { ...base, host: `miss${i}.nowhere.example.org`, path: '/' }, // denied_no_rule
    )
  }
  return out
}

/**
 * ns per decision over BATCHES batches of BATCH_SIZE. Each batch's facts are built just before it is
 * timed, with fresh host strings, as the proxy builds them per request: the request is in cache and
 * its strings are unhashed, while the policy's rule data is as warm or cold as the mix makes it.
 */
function measure<T extends { host: string }>(label: string, decide: (f: T) => number, facts: readonly T[]): void {
  const fresh = (k: number): T[] => {
    const out: T[] = []
    for (let j = 0; j < BATCH_SIZE; j++) {
      const f = facts[(k + j) % facts.length] as T
      out.push({ ...f, host: `${f.host} `.slice(0, -1) })
    }
    return out
  }
  for (let i = 0; i < 100; i++) for (const f of fresh(i * BATCH_SIZE)) decide(f) // warm-up
  const perBatch: number[] = []
  for (let b = 0; b < BATCHES; b++) {
    const batch = fresh(b * BATCH_SIZE)
    const t0 = process.hrtime.bigint()
    for (let j = 0; j < BATCH_SIZE; j++) decide(batch[j] as T)
    perBatch.push(Number(process.hrtime.bigint() - t0) / BATCH_SIZE)
  }
  perBatch.sort((a, b) => a - b)
  const pct = (p: number): string =>
    (perBatch[Math.min(perBatch.length - 1, Math.floor(p * perBatch.length))] ?? 0).toFixed(0)
  console.log(
    `${label.padEnd(20)} median ${pct(0.5).padStart(5)} ns   p99 ${pct(0.99).padStart(5)} ns   (${BATCHES * BATCH_SIZE} decisions)`,
  )
}

const t0 = process.hrtime.bigint()
const policy = buildPolicy()
console.log(`compiled ${RULES} host rules in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`)
let sink = 0
// warm: 50 distinct targets, like an agent working with a handful of hosts.
// cold: 5,000 distinct targets cycled, so most rule data is out of cache (worst case).
for (const [label, distinct] of [
  ['warm', 10],
  ['cold', 1000],
] as const) {
  const requests = requestMix(distinct)
  const connects: ConnectFacts[] = requests.map(({ agent, host, port }) => ({ agent, host, port }))
  measure(`decideRequest ${label}`, (f: RequestFacts) => (sink += decideRequest(policy, f).verdict.length), requests)
  measure(`decideConnect ${label}`, (f: ConnectFacts) => (sink += decideConnect(policy, f).verdict.length), connects)
}
console.log(`(checksum ${sink})\nreproduce: node --import tsx bench/decide.ts`)
