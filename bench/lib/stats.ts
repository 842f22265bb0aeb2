/**
 * Pure helpers of the bench kit: statistics over rounds, wrk's output and /proc text. No I/O here,
 * so test/unit/bench-lib.test.ts covers them table by table.
 */

/** The p-th percentile of an ascending array (nearest rank, lower); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

/** Median of the finite values (mean of the middle two when even); NaN when none. */
export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((x, y) => x - y)
  if (v.length === 0) return NaN
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2
}

/**
 * The ratio of two contenders measured in the same rounds: the median over rounds of a ÷ b in that
 * round. Each round runs the contenders back to back, so a burst of other load moves both sides of a
 * round's ratio alike, and the median drops the rounds it hit unevenly. Falls back to the ratio of
 * the totals when no round has both.
 */
export function roundRatio(a: readonly number[], b: readonly number[], totals?: readonly [number, number]): number {
  const r = median(a.map((x, i) => x / (b[i] ?? NaN)))
  if (Number.isFinite(r)) return r
  return totals ? totals[0] / totals[1] : NaN
}

/** A number for a table cell: 3 significant-ish digits, or — when missing. */
export function fmt(n: number | null | undefined, unit = ''): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—'
  const s = Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
  return unit ? `${s} ${unit}` : s
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  readonly requests: number
  readonly seconds: number
  readonly perSecond: number
  /** Latency percentiles (ms) from `--latency`; NaN where wrk printed none. */
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  /** Non-2xx/3xx answers plus socket errors (connect, read, write, timeout). */
  readonly errors: number
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** wrk's time figures (`635.91us`, `1.20ms`, `2.00s`, `1.00m`) in ms; NaN when unreadable. */
export function parseWrkTime(text: string): number {
  const m = /^([0-9.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!m) return NaN
  return Number(m[1]) * (TIME_UNITS[m[2] as string] ?? NaN)
}

/** wrk's summary (run with `--latency`): requests, duration, req/s, latency percentiles, errors. Null when it is not one. */
export function parseWrk(out: string): WrkResult | null {
  const total = /^\s*(\d+) requests in ([0-9.]+(?:us|ms|s|m|h)),/m.exec(out)
  const rate = /^Requests\/sec:\s+([0-9.]+)/m.exec(out)
  if (!total || !rate) return null
  const pct = (p: number): number => {
    const m = new RegExp(`^\\s+${p}(?:\\.0+)?%\\s+(\\S+)\\s*$`, 'm').exec(out)
    return m ? parseWrkTime(m[1] as string) : NaN
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = Number(non2xx?.[1] ?? 0) + (sock ? sock.slice(1, 5).reduce((n, x) => n + Number(x), 0) : 0)
  return {
    requests: Number(total[1]),
    seconds: parseWrkTime(total[2] as string) / 1000,
    perSecond: Number(rate[1]),
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    errors,
  }
}

/** A wrk Lua script sending absolute-form requests to a proxy (the URL given to wrk is the proxy's). */
export function wrkProxyScript(absoluteUrl: string, headers: Readonly<Record<string, string>>): string {
  const q = (s: string): string => JSON.stringify(s) // Lua accepts JSON's string escapes for these (ASCII) values
  return [
    'wrk.method = "GET"',
    `wrk.path = ${q(absoluteUrl)}`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${q(k)}] = ${q(v)}`),
    '',
  ].join('\n')
}

// ---------------------------------------------------------------- /proc

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux Node runs on). */
export const CLOCK_TICKS_PER_S = 100

export interface ProcStat {
  readonly pid: number
  readonly ppid: number
  /** User + system CPU of the process (all its threads) so far, ms. */
  readonly cpuMs: number
}

/** One /proc/<pid>/stat line; the command name may hold spaces and parentheses, so fields are read after the last ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')')
  const pid = Number.parseInt(text, 10)
  if (close < 0 || !Number.isInteger(pid)) return null
  // After ") ": state(3) ppid(4) … utime(14) stime(15), numbered as in proc(5).
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ')
  const ppid = Number(f[1])
  const utime = Number(f[11])
  const stime = Number(f[12])
  if (![ppid, utime, stime].every(Number.isFinite)) return null
  return { pid, ppid, cpuMs: ((utime + stime) * 1000) / CLOCK_TICKS_PER_S }
}

/** `root` and every descendant of it among `stats` (a cluster primary and its workers, Squid and its helpers). */
export function descendants(root: number, stats: readonly ProcStat[]): number[] {
  const kids = new Map<number, number[]>()
  for (const s of stats) kids.set(s.ppid, [...(kids.get(s.ppid) ?? []), s.pid])
  const out: number[] = []
  const todo = [root]
  while (todo.length > 0 && out.length < 10_000) {
    const p = todo.pop() as number
    out.push(p)
    todo.push(...(kids.get(p) ?? []))
  }
  return out
}

/** VmRSS (KiB) from /proc/<pid>/status text; NaN when absent. */
export function parseVmRssKiB(status: string): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status)
  return m ? Number(m[1]) : NaN
}
