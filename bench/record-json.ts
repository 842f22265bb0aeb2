/**
 * What serialising a record costs: JSON.stringify against recordJson (telemetry/record-json.ts) on
 * the decision and close records a forwarded request makes, built by events.ts as the proxy builds
 * them. Run: node --import tsx bench/record-json.ts
 * Pure CPU, bounded: ROUNDS rounds of N records each way, interleaved; ns per record, median of rounds.
 */
import { buildCloseRecord, buildDecisionRecord, newRequestId } from '../src/telemetry/events.js'
import { recordJson } from '../src/telemetry/record-json.js'

const N = 50_000
const ROUNDS = 9

function decision(i: number): object {
  return buildDecisionRecord(
    {
      id: newRequestId(),
      agent: 'bench',
      src: `127.0.0.1:${30_000 + (i % 1000)}`,
      method: 'GET',
      scheme: 'http',
      host: 'plain.test',
      port: 41_567,
      path: `/v1/items/${i % 97}`,
      tls: null,
      mode: 'enforce',
      address: '127.0.0.1',
    },
    { verdict: 'allow', reason: 'allowed', ruleId: 'bench.allow[1]' },
    false,
  )
}

function close(i: number): object {
  return buildCloseRecord({ id: newRequestId(), agent: 'bench', host: 'plain.test' }, 0, 168 + (i % 7), Date.now() - 1)
}

const records = {
  decision: Array.from({ length: 1000 }, (_, i) => decision(i)),
  close: Array.from({ length: 1000 }, (_, i) => close(i)),
}
const ways = { 'JSON.stringify': (r: object) => JSON.stringify(r), recordJson: (r: object) => recordJson(r) }

let sink = 0
for (const [kind, list] of Object.entries(records)) {
  const ns: Record<string, number[]> = {}
  for (let round = 0; round < ROUNDS; round++) {
    for (const [way, fn] of Object.entries(ways)) {
      const t = process.hrtime.bigint()
      // recordJson remembers the last object: alternate objects so every call serialises.
      for (let i = 0; i < N; i++) sink += fn(list[i % list.length] as object).length
      ;(ns[way] ??= []).push(Number(process.hrtime.bigint() - t) / N)
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  console.log(
    `${kind.padEnd(8)} ${Object.entries(ns)
      .map(([way, xs]) => `${way} ${median(xs).toFixed(0)} ns`)
      .join('   ')}`,
  )
}
if (sink === 0) console.log('nothing serialised')
