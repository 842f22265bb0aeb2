import t from 'tap'
import {
  CLOCK_TICKS_PER_S,
  descendants,
  fmt,
  median,
  parseProcStat,
  parseVmRssKiB,
  parseWrk,
  parseWrkTime,
  percentile,
  roundRatio,
  wrkProxyScript,
} from '../../bench/lib/stats.js'

// What wrk 4.2 prints with --latency (a proxy run with some errors).
const WRK_OUT = `Running 2s test @ http://127.0.0.1:40211/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us  120.40us   5.00ms   91.20%
    Req/Sec    24.61k     1.02k   26.00k    80.00%
  Latency Distribution
     50%  620.00us
     75%  700.00us
     90%  810.00us
     99%    1.20ms
  49220 requests in 2.00s, 6.01MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  24610.00
Transfer/sec:      3.00MB
`

t.test('parseWrkTime: every unit wrk prints, in ms', async (t) => {
  const cases: Array<[string, number]> = [
    ['635.91us', 0.63591],
    ['1.20ms', 1.2],
    ['2.00s', 2000],
    ['1.00m', 60_000],
    [' 3.5ms ', 3.5],
  ]
  for (const [text, ms] of cases) t.test(text, async (t) => t.ok(Math.abs(parseWrkTime(text) - ms) < 1e-9, `${ms}`))
  t.ok(Number.isNaN(parseWrkTime('fast')), 'unreadable is NaN')
  t.ok(Number.isNaN(parseWrkTime('12')), 'a number without a unit is NaN')
})

t.test('parseWrk: requests, rate, percentiles and errors from a --latency run', async (t) => {
  const r = parseWrk(WRK_OUT)
  t.ok(r)
  t.equal(r?.requests, 49220)
  t.equal(r?.seconds, 2)
  t.equal(r?.perSecond, 24610)
  t.equal(r?.p50Ms, 0.62)
  t.equal(r?.p90Ms, 0.81)
  t.equal(r?.p99Ms, 1.2)
  t.equal(r?.errors, 8, 'socket errors (read 2, timeout 1) plus 5 non-2xx answers')
})

t.test('parseWrk: a clean run has no errors; without --latency percentiles are NaN', async (t) => {
  const clean = WRK_OUT.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, '')
  t.equal(parseWrk(clean)?.errors, 0)
  const noLatency = clean.replace(/ {2}Latency Distribution\n(?: {5}\d+%.*\n)+/, '')
  const r = parseWrk(noLatency)
  t.equal(r?.requests, 49220)
  t.ok(Number.isNaN(r?.p99Ms), 'no distribution printed')
})

t.test('parseWrk: something that is not a wrk summary is null', async (t) => {
  t.equal(parseWrk(''), null)
  t.equal(parseWrk('unable to connect to 127.0.0.1:1 Connection refused\n'), null)
})

t.test('wrkProxyScript: absolute-form path and the proxy headers, as Lua', async (t) => {
  const lua = wrkProxyScript('http://plain.test:8080/', {
    Host: 'plain.test:8080',
    'Proxy-Authorization': 'Basic YTpi',
  })
  t.match(lua, /^wrk\.method = "GET"$/m)
  t.match(lua, /^wrk\.path = "http:\/\/plain\.test:8080\/"$/m)
  t.match(lua, /^wrk\.headers\["Host"\] = "plain\.test:8080"$/m)
  t.match(lua, /^wrk\.headers\["Proxy-Authorization"\] = "Basic YTpi"$/m)
})

t.test('percentile: nearest rank on an ascending array', async (t) => {
  const a = Float64Array.from({ length: 100 }, (_, i) => i + 1)
  t.equal(percentile(a, 50), 51)
  t.equal(percentile(a, 99), 100)
  t.equal(percentile(a, 100), 100, 'clamped to the last')
  t.equal(percentile([7], 99), 7)
  t.ok(Number.isNaN(percentile([], 50)), 'empty is NaN')
})

t.test('median: odd, even, non-finite values ignored', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([1, NaN, Infinity, 3]), 2)
  t.ok(Number.isNaN(median([])))
})

t.test('roundRatio: the median of per-round ratios, not the ratio of totals', async (t) => {
  // A burst of other load halves both sides of round 2; a lone spike in round 3 hits only b.
  t.equal(roundRatio([100, 50, 100], [200, 100, 400]), 0.5)
  t.equal(roundRatio([10, 20], [10, 10]), 1.5, 'even count: mean of the middle two')
  t.equal(roundRatio([10, 20], [10], [30, 10]), 1, 'rounds without a partner are dropped')
  t.equal(roundRatio([], [], [30, 10]), 3, 'no round at all: the totals')
  t.ok(Number.isNaN(roundRatio([], [])))
})

t.test('fmt: table cells', async (t) => {
  t.equal(fmt(12345.6, 'req/s'), '12346 req/s')
  t.equal(fmt(42.25), '42.3')
  t.equal(fmt(0.5), '0.50')
  t.equal(fmt(null), '—')
  t.equal(fmt(NaN, 'ms'), '—')
})

t.test('parseProcStat: pid, ppid and CPU ms, whatever the command name holds', async (t) => {
  // Fields 14/15 (utime, stime) are 150 and 50 ticks.
  const tail = 'S 1200 1300 1300 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 11 0 500 1000 200'
  const plain = parseProcStat(`1234 (node) ${tail}`)
  t.same(plain, { pid: 1234, ppid: 1200, cpuMs: (200 * 1000) / CLOCK_TICKS_PER_S })
  const odd = parseProcStat(`1235 (squid (worker) x) ${tail}`)
  t.equal(odd?.ppid, 1200, 'a name with spaces and parentheses')
  t.equal(odd?.cpuMs, 2000)
  t.equal(parseProcStat(''), null)
  t.equal(parseProcStat('1236 (short) S 1'), null, 'truncated')
})

t.test('descendants: a cluster primary, its workers and their children; nothing else', async (t) => {
  const stats = [
    { pid: 10, ppid: 1, cpuMs: 0 },
    { pid: 11, ppid: 10, cpuMs: 0 },
    { pid: 12, ppid: 10, cpuMs: 0 },
    { pid: 13, ppid: 12, cpuMs: 0 },
    { pid: 20, ppid: 1, cpuMs: 0 },
  ]
  t.same(descendants(10, stats).sort(), [10, 11, 12, 13])
  t.same(descendants(20, stats), [20])
  t.same(descendants(99, stats), [99], 'a process not listed is still itself')
})

t.test('parseVmRssKiB', async (t) => {
  t.equal(parseVmRssKiB('Name:\tnode\nVmRSS:\t   51234 kB\nThreads: 11\n'), 51234)
  t.ok(Number.isNaN(parseVmRssKiB('Name:\tkthreadd\n')))
})
