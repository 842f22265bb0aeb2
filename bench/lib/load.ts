/**
 * Load drivers and the interleaved comparison every throughput row uses. A contender is one way of
 * doing the same operation (direct, through Portcullis, through Squid…); `compare` warms each up,
 * then runs rounds in which every contender runs once, back to back, rotated round by round, so a
 * burst of other load on this shared machine hits them alike. CPU per operation is read from /proc
 * over the contender's process tree during its own rounds only.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { within } from './clients.js'
import { cpuMs } from './proc.js'
import { median, parseWrk, percentile, type WrkResult } from './stats.js'

export interface RoundResult {
  readonly ops: number
  readonly seconds: number
  readonly errors: number
  readonly firstError: string | null
  /** Per-op latency, ms, ascending (in-process loops). */
  readonly latencies?: Float64Array
  /** Latency percentiles of this round, ms (wrk). */
  readonly p50Ms?: number
  readonly p99Ms?: number
}

export interface Contender {
  readonly name: string
  /** Whose CPU (with its descendants) is charged to this contender's operations. */
  readonly pid?: number
  round(maxMs: number): Promise<RoundResult>
}

export interface Outcome {
  readonly ops: number
  readonly seconds: number
  readonly perSecond: number
  /** ops/s in each round, in round order. */
  readonly rounds: readonly number[]
  readonly p50Ms: number
  readonly p99Ms: number
  /** CPU µs per operation of the contender's process tree, or null without a pid. */
  readonly cpuUs: number | null
  readonly errors: number
  readonly firstError: string | null
}

export interface LoadResult extends RoundResult {
  readonly perSecond: number
  readonly latencies: Float64Array
}

/**
 * Run `op` from `concurrency` loops until `maxOps` ops have started or `maxMs` has passed (whichever
 * first); stop early after 50 errors.
 */
export async function loadLoop(
  op: () => Promise<unknown>,
  o: { concurrency: number; maxOps: number; maxMs: number },
): Promise<LoadResult> {
  const lat = new Float64Array(o.maxOps)
  let started = 0
  let done = 0
  let errors = 0
  let firstError: string | null = null
  const t0 = performance.now()
  const deadline = t0 + o.maxMs
  const loop = async (): Promise<void> => {
    while (started < o.maxOps && performance.now() < deadline && errors < 50) {
      started++
      const s = performance.now()
      try {
        await op()
        lat[done++] = performance.now() - s
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? err.message : String(err)
      }
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, loop))
  const seconds = (performance.now() - t0) / 1000
  const latencies = lat.slice(0, done).sort()
  return { ops: done, errors, seconds, perSecond: done / seconds, latencies, firstError }
}

/** A contender driven from this process: `op` in `concurrency` loops. */
export function loopContender(
  name: string,
  op: () => Promise<unknown>,
  o: { concurrency: number; maxOps: number; pid?: number },
): Contender {
  return {
    name,
    ...(o.pid === undefined ? {} : { pid: o.pid }),
    round: (maxMs) => loadLoop(op, { concurrency: o.concurrency, maxOps: o.maxOps, maxMs }),
  }
}

export interface WrkOptions {
  /** http://127.0.0.1:<port>/…: the origin, or the proxy when `script` sends absolute-form requests. */
  readonly url: string
  readonly connections: number
  readonly threads?: number
  readonly headers?: Readonly<Record<string, string>>
  /** Lua script text (e.g. stats.wrkProxyScript). */
  readonly script?: string
}

/** One wrk run (C load generator, keep-alive), whole seconds (wrk's unit); bounded by a deadline. */
export async function runWrk(o: WrkOptions, seconds: number): Promise<WrkResult> {
  if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(o.url)) throw new Error(`wrk: loopback only, not ${o.url}`)
  const dir = o.script === undefined ? null : mkdtempSync(join(tmpdir(), 'pc-bench-wrk-'))
  const script = dir === null ? null : join(dir, 'proxy.lua')
  if (script !== null) writeFileSync(script, o.script ?? '')
  const args = [
    ...['-t', String(o.threads ?? 1), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(seconds))}s`],
    ...['--latency', '--timeout', '10s'],
    ...Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
    ...(script === null ? [] : ['-s', script]),
    o.url,
  ]
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')))
  child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')))
  try {
    const code = await within(
      new Promise<number | null>((r, reject) => {
        child.once('error', reject)
        child.once('exit', (c) => r(c))
      }),
      (seconds + 20) * 1000,
      'wrk',
      () => child.kill('SIGKILL'),
    )
    const parsed = parseWrk(out)
    if (code !== 0 || parsed === null) throw new Error(`wrk exited ${code}: ${out.slice(0, 500)}`)
    return parsed
  } finally {
    if (dir !== null) rmSync(dir, { recursive: true, force: true })
  }
}

/** A contender driven by wrk (its own process: the load generator's CPU is not this process's). */
export function wrkContender(name: string, o: WrkOptions, pid?: number): Contender {
  return {
    name,
    ...(pid === undefined ? {} : { pid }),
    async round(maxMs) {
      const r = await runWrk(o, maxMs / 1000)
      return {
        ops: r.requests,
        seconds: r.seconds,
        errors: r.errors,
        firstError: r.errors > 0 ? `${r.errors} non-2xx answers or socket errors` : null,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
      }
    },
  }
}

export interface RoundPlan {
  readonly rounds: number
  readonly roundMs: number
  readonly warmMs: number
}

interface Acc {
  ops: number
  seconds: number
  cpuMs: number
  rounds: number[]
  lat: Float64Array[]
  p50: number[]
  p99: number[]
  errors: number
  firstError: string | null
}

/** Warm every contender up, then `plan.rounds` interleaved, rotated rounds; totals and per-round rates. */
export async function compare(
  what: string,
  contenders: readonly Contender[],
  plan: RoundPlan,
): Promise<Map<string, Outcome>> {
  for (const c of contenders) await c.round(plan.warmMs)
  const acc = new Map<string, Acc>(
    contenders.map((c) => [
      c.name,
      { ops: 0, seconds: 0, cpuMs: 0, rounds: [], lat: [], p50: [], p99: [], errors: 0, firstError: null },
    ]),
  )
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < contenders.length; i++) {
      const c = contenders[(i + round) % contenders.length] as Contender
      const a = acc.get(c.name) as Acc
      const c0 = c.pid ? cpuMs(c.pid) : 0
      const r = await c.round(plan.roundMs)
      a.cpuMs += c.pid ? cpuMs(c.pid) - c0 : 0
      a.ops += r.ops
      a.seconds += r.seconds
      a.rounds[round] = r.ops / r.seconds
      if (r.latencies) a.lat.push(r.latencies)
      if (r.p50Ms !== undefined) a.p50.push(r.p50Ms)
      if (r.p99Ms !== undefined) a.p99.push(r.p99Ms)
      a.errors += r.errors
      a.firstError ??= r.firstError
    }
  }
  const out = new Map<string, Outcome>()
  for (const c of contenders) {
    const a = acc.get(c.name) as Acc
    if (a.ops === 0)
      throw new Error(`${what} ${c.name}: no operation succeeded (${a.firstError ?? 'no error recorded'})`)
    const all = mergeSorted(a.lat)
    out.set(c.name, {
      ops: a.ops,
      seconds: a.seconds,
      perSecond: a.ops / a.seconds,
      rounds: a.rounds,
      // Loops keep every latency; wrk gives percentiles per round, whose median is taken.
      p50Ms: all.length > 0 ? percentile(all, 50) : median(a.p50),
      p99Ms: all.length > 0 ? percentile(all, 99) : median(a.p99),
      cpuUs: c.pid ? (a.cpuMs * 1000) / a.ops : null,
      errors: a.errors,
      firstError: a.firstError,
    })
  }
  return out
}

function mergeSorted(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, l) => n + l.length, 0))
  let at = 0
  for (const l of parts) {
    all.set(l, at)
    at += l.length
  }
  return all.sort()
}
