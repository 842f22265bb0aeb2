import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { metric as metricWith } from '../helpers/admin.js'
import { proxiedGet } from '../helpers/clients.js'
import { originOnlyYaml, writeConfig } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { startRedis } from '../helpers/redis.js'
import { clearOfMinuteEnd, waitFor } from '../helpers/poll.js'
import { listeningAt, spawnPortcullis, type LogLine } from '../helpers/spawn-portcullis.js'

/**
 * `workers: 2` (runtime/workers.ts): two worker processes on one listen port, sharing limits through
 * Redis; a worker that dies is replaced; SIGTERM to the primary drains every worker.
 */

const ADMIN_TOKEN = 'workers-admin-token-0123456789abcdef'
const RPM = 10

const metric = (adminUrl: string, name: string) => metricWith(adminUrl, name, ADMIN_TOKEN)

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('workers: 2 without Redis is refused before anything listens', async (t) => {
  const file = writeConfig(t.testdir(), `workers: 2\n${originOnlyYaml([80])}`)
  const proc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN })
  const [code] = await proc.exited
  t.equal(code, 2, 'exit code 2: a configuration fault')
  t.match(proc.stderr(), /workers: 2 needs telemetry\.redis\.url .*\(PC_ERR_WORKERS_NEED_REDIS\)/)
  t.notOk(
    proc.parsed().some((l) => l.code === 'PC_STARTED'),
    'no worker was started',
  )
})

t.test('a worker that cannot start stops the others, and start fails', async (t) => {
  const redis = await startRedis(t)
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as AddressInfo).port
  const file = writeConfig(
    t.testdir(),
    `workers: 2\ntelemetry: { redis: { url: ${JSON.stringify(redis.url)} } }\n${originOnlyYaml([80])}`,
  )
  const proc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_LISTEN: String(port) })
  const [code] = await proc.exited
  t.equal(code, 2)
  t.match(
    proc.stderr(),
    /cannot listen for proxy on 127\.0\.0\.1:\d+: the address is in use \(PC_ERR_LISTEN\)/,
    "the worker's own error, and why",
  )
  t.match(proc.stderr(), /a worker exited before it was listening \(exit code 2.*\(PC_ERR_WORKER_START\)/)
  t.notOk(
    proc.parsed().some((l) => l.code === 'PC_WORKERS_STARTED'),
    'never reported as started',
  )
})

t.test('workers: 2 on one Redis', async (t) => {
  const redis = await startRedis(t)
  const origin = await startHttpOrigin(t, (req, res) => {
    const reply = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`origin saw ${req.url}\n`)
    }
    if (req.url?.startsWith('/public/slow')) setTimeout(reply, 1500)
    else reply()
  })
  const body = originOnlyYaml([origin.port], {
    paths: ['/public/**'],
    agents: { ci: 'limits: { requests_per_minute: 10000 }', limited: '' },
    extra: `workers: 2
telemetry:
  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:workers", maxlen: 100000 }
limits: { requests_per_minute: ${RPM} }`,
  })
  const file = writeConfig(t.testdir(), body)
  const proc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN })
  const up = await proc.waitLine((r) => r.code === 'PC_WORKERS_STARTED')
  const pids = up.pids as number[]
  t.equal(pids.length, 2, 'two workers')
  t.ok(
    pids.every((p) => p !== proc.child.pid && isAlive(p)),
    'each its own live process',
  )
  // Each worker's log is its own (batched) stream: its line may follow the primary's.
  const startedLines = (): LogLine[] => proc.parsed().filter((l) => l.code === 'PC_STARTED')
  await waitFor('both PC_STARTED lines', () => startedLines().length === 2)
  t.equal(startedLines().length, 2, 'each worker said it is listening')
  t.equal(new Set(startedLines().map((l) => l.proxy)).size, 1, 'both on the same proxy address')
  const { proxyPort, adminUrl } = listeningAt(startedLines()[0] as LogLine)
  const at = (path: string): string => `http://origin.test:${origin.port}${path}`

  await t.test('/metrics answers for every worker, whichever takes the scrape', async (t) => {
    /** Every portcullis_requests_total series of one scrape, added up (a connection of its own: any worker). */
    const requestsTotal = async (): Promise<number> => {
      const res = await fetch(`${adminUrl}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, connection: 'close' },
      })
      if (res.status !== 200) return Number.NaN
      const lines = (await res.text()).split('\n').filter((l) => l.startsWith('portcullis_requests_total{'))
      return lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    }
    const N = 30
    // Each on a connection of its own: the primary hands them to the workers in turn.
    const answers = await Promise.all(Array.from({ length: N }, (_, i) => proxiedGet(proxyPort, at(`/public/m${i}`))))
    t.ok(
      answers.every((a) => a.status === 200),
      'every request answered',
    )
    await waitFor('every decision counted', async () => (await requestsTotal()) === N)
    const scrapes: number[] = []
    for (let i = 0; i < 8; i++) scrapes.push(await requestsTotal())
    t.same(
      scrapes,
      scrapes.map(() => N),
      `every scrape counts all ${N}, whichever worker took it (one worker's own count went backwards)`,
    )
    const workerLines = proc.parsed().filter((l) => l.code === 'PC_STARTED')
    t.same(new Set(workerLines.map((l) => l.pid)), new Set(pids), "each worker's log lines carry its pid")
  })

  await t.test('requests are served, and the workers share limits as two instances', async (t) => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => proxiedGet(proxyPort, at(`/public/${i}`))))
    t.same(
      answers.map((a) => a.status),
      Array.from({ length: 20 }, () => 200),
      'every request answered',
    )
    t.match(answers[3]?.body, /origin saw \/public\/3/)
    await waitFor(
      'both workers in the shared limit set',
      async () => (await metric(adminUrl, 'portcullis_limits_instances')) === 2,
    )
    // A fixed one-minute window is shared: keep the run clear of a minute boundary.
    await clearOfMinuteEnd()
    const statuses: number[] = []
    for (let i = 0; i < 2 * RPM; i++)
      statuses.push((await proxiedGet(proxyPort, at(`/public/limited-${i}`), 'limited')).status)
    const admitted = statuses.filter((s) => s === 200).length
    // Each worker alone would admit the whole budget; together they admit it once (± one per worker).
    t.ok(
      admitted >= RPM - 2 && admitted <= RPM + 1,
      `admitted ${admitted} of ${2 * RPM} against one budget of ${RPM}: ${statuses.join(' ')}`,
    )
  })

  await t.test('a worker that dies is replaced, and serving goes on', async (t) => {
    const [victim = 0, survivor = 0] = pids
    process.kill(victim, 'SIGKILL')
    const exited = await proc.waitLine((r) => r.code === 'PC_WORKER_EXITED' && r.pid === victim)
    t.equal(exited.signal, 'SIGKILL')
    t.equal(exited.restart_in_ms, 100, 'the first restart comes after 100 ms')
    const during = await Promise.all(Array.from({ length: 6 }, (_, i) => proxiedGet(proxyPort, at(`/public/d${i}`))))
    t.ok(
      during.every((a) => a.status === 200),
      'the other worker keeps serving meanwhile',
    )
    const restarted = await proc.waitLine((r) => r.code === 'PC_WORKER_RESTARTED' && r.replaces === victim)
    const fresh = Number(restarted.pid)
    t.ok(fresh !== victim && fresh !== survivor && isAlive(fresh), `a new worker (pid ${fresh})`)
    t.ok(isAlive(survivor), 'the other worker was left alone')
    const after = await Promise.all(Array.from({ length: 10 }, (_, i) => proxiedGet(proxyPort, at(`/public/a${i}`))))
    t.ok(
      after.every((a) => a.status === 200),
      'both serve again',
    )
    pids.splice(0, 2, fresh, survivor)
  })

  await t.test('a replacement that cannot read the config exits, and is retried until it can', async (t) => {
    const [victim = 0, survivor = 0] = pids
    // Lines of the earlier subtests (a worker already exited and was replaced once) are not this one's.
    const since = new Date().toISOString()
    const fresh = (pred: (r: LogLine) => boolean) => (r: LogLine) => String(r.time) >= since && pred(r)
    writeFileSync(file, `${body}\nlimits: [\n`)
    await proc.waitLine(fresh((r) => r.code === 'PC_CONFIG_REFUSED'))
    process.kill(victim, 'SIGKILL')
    const killed = await proc.waitLine(fresh((r) => r.code === 'PC_WORKER_EXITED' && r.pid === victim))
    const failedReplacement = await proc.waitLine(fresh((r) => r.code === 'PC_WORKER_EXITED' && r.pid !== victim))
    t.equal(failedReplacement.exit_code, 2, 'the replacement exited with the config error (it hung before)')
    t.equal(failedReplacement.restart_in_ms, 2 * Number(killed.restart_in_ms), 'and is retried, backing off')
    writeFileSync(file, body)
    const restarted = await proc.waitLine(fresh((r) => r.code === 'PC_WORKER_RESTARTED'))
    const replacement = Number(restarted.pid)
    t.ok(isAlive(replacement) && isAlive(survivor), 'once the config is good again, two workers serve')
    const after = await Promise.all(Array.from({ length: 6 }, (_, i) => proxiedGet(proxyPort, at(`/public/r${i}`))))
    t.ok(
      after.every((a) => a.status === 200),
      'and answer',
    )
    pids.splice(0, 2, replacement, survivor)
  })

  await t.test('SIGTERM to the primary drains every worker, then it exits 0', async (t) => {
    const slow = proxiedGet(proxyPort, at('/public/slow'))
    await waitFor('the slow request at the origin', () => origin.seen.some((s) => s.url === '/public/slow'))
    proc.child.kill('SIGTERM')
    const answer = await slow
    t.equal(answer.status, 200, 'the request in flight finished')
    t.match(answer.body, /origin saw \/public\/slow/)
    const [code, signal] = await proc.exited
    t.equal(code, 0, `exit code 0 (signal ${signal})`)
    const lines = proc.parsed()
    t.ok(
      lines.some((l) => l.code === 'PC_STOPPING' && l.subsystem === 'workers'),
      'the primary said it is stopping',
    )
    t.equal(
      lines.filter((l) => l.code === 'PC_STOPPING' && l.signal === 'primary').length,
      2,
      'both workers drained on the relayed signal',
    )
    t.notOk(
      lines.some((l) => l.code === 'PC_STOPPING_NOW'),
      'one signal: nothing was cut',
    )
    await waitFor('every worker gone', () => pids.every((p) => !isAlive(p)))
  })
})
