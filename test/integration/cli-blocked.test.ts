import t from 'tap'
import { runBlocked } from '../../src/cli/blocked.js'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { until } from '../helpers/poll.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { decodeStreamEntry, encodeStreamEntry } from '../../src/redis/stream-entry.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

t.test('blocked --follow: rows that arrive later line up with the header', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const deny = (path: string): ReturnType<typeof curl> =>
    curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://origin.test:${origin.port}${path}`])
  await deny('/a')
  let out = ''
  const ctl = new AbortController()
  const running = runBlocked(
    ['--admin', pc.adminUrl, '--follow'],
    { stdout: (s) => void (out += s), stderr: () => undefined, env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken } },
    ctl.signal,
  )
  t.ok(await until(() => out.split('\n').length >= 3), 'the header and the first row')
  await deny(`/private/${'deep/'.repeat(20)}file.txt`)
  await deny('/b')
  t.ok(await until(() => out.split('\n').filter(Boolean).length >= 4), 'followed rows arrive')
  ctl.abort()
  t.equal(await running, 0)
  const lines = out.split('\n').filter(Boolean)
  const header = lines[0] ?? ''
  const reasonAt = header.indexOf('REASON')
  const ruleAt = header.indexOf('RULE ')
  for (const line of lines.slice(1)) {
    t.match(line.slice(reasonAt), /^denied_path /, `REASON column aligned: ${line}`)
    t.match(line.slice(ruleAt), /^g\.allow\[0\]/, 'RULE column aligned')
  }
  t.match(out, /…/, 'the long path was cut to its column')
})

t.test('blocked lists a stream entry another writer left incomplete, with - for what it lacks', async (t) => {
  const redis = await startRedis(t)
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:events" }`,
    }),
  )
  const client = redisClient(t, redis.url)
  const r = JSON.stringify({
    time: new Date().toISOString(),
    id: '01M98AAAAAAAAAAAAAAAAAAAAB',
    event: 'decision',
    agent: 'ap',
    decision: 'deny',
    reason: 'denied_no_rule',
  })
  await client.xadd(
    ...['pc:events', '*', 'r', r, 'event', 'decision', 'id', '01M98AAAAAAAAAAAAAAAAAAAAB'],
    ...['agent', 'ap', 'decision', 'deny', 'reason', 'denied_no_rule', 'instance', 'x'],
  )
  await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://origin.test:${origin.port}/a`])
  let out = ''
  let err = ''
  const code = await runBlocked(
    ['--admin', pc.adminUrl, '--limit', '5'],
    {
      stdout: (s) => void (out += s),
      stderr: (s) => void (err += s),
      env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken },
    },
    new AbortController().signal,
  )
  t.equal(code, 0, err)
  t.match(out, /ap +- +- +- +denied_no_rule/, 'the incomplete row, its missing fields as -')
  t.match(out, /denied_path/, 'and the rows after it')
})

t.test('blocked and /api/events find a denial behind more entries than one scan batch, in Redis', async (t) => {
  const redis = await startRedis(t)
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      agents: { ci: '', noisy: '' },
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:events" }`,
    }),
  )
  const client = redisClient(t, redis.url)
  await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://origin.test:${origin.port}/secret`])
  t.ok(await until(async () => (await client.xlen('pc:events')) >= 1), 'the denial reached the stream')
  const [[, fields] = ['', []]] = await client.xrange('pc:events', '-', '+', 'COUNT', 1)
  const denial = decodeStreamEntry(fields) as DecisionRecord
  t.equal(denial.decision, 'deny')
  // After it, as the sink writes them: 26,000 allowed requests' records, then 30,000 denials of another agent.
  const flood = async (n: number, make: (i: number) => DecisionRecord): Promise<void> => {
    for (let i = 0; i < n; i += 2000) {
      const batch = client.pipeline()
      for (let j = i; j < Math.min(n, i + 2000); j++) batch.xadd('pc:events', '*', ...encodeStreamEntry(make(j), 'x'))
      await batch.exec()
    }
  }
  const id = (prefix: string, i: number): string => `01M98${prefix}${String(i).padStart(20, '0')}`
  await flood(26_000, (i) => ({ ...denial, id: id('A', i), decision: 'allow', reason: 'allowed', rule: 'g.allow[0]' }))
  const run = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = ''
    let err = ''
    const code = await runBlocked(
      ['--admin', pc.adminUrl, ...args],
      {
        stdout: (s) => void (out += s),
        stderr: (s) => void (err += s),
        env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken },
      },
      new AbortController().signal,
    )
    return { code, out, err }
  }
  const afterAllows = await run(['--limit', '5'])
  t.equal(afterAllows.code, 0)
  t.match(afterAllows.out, new RegExp(`${denial.id}`), 'the denial under 26,000 allowed records')
  t.notMatch(afterAllows.err, /no denied requests match/)
  const res = await fetch(`${pc.adminUrl}/api/events?decision=deny&limit=5`, {
    headers: { authorization: `Bearer ${pc.adminToken}` },
  })
  const page = (await res.json()) as { events: DecisionRecord[]; next_cursor: string | null; source: string }
  t.same(
    { ids: page.events.map((e) => e.id), next_cursor: page.next_cursor, source: page.source },
    { ids: [denial.id], next_cursor: null, source: 'redis' },
    'the API page holds it, and no cursor once the stream start is reached',
  )
  await flood(30_000, (i) => ({ ...denial, id: id('B', i), agent: 'noisy' }))
  const oneAgent = await run(['--agent', 'ci', '--limit', '5'])
  t.match(oneAgent.out, new RegExp(`${denial.id}`), "the agent's denial under another agent's 30,000")
  t.notMatch(oneAgent.out, /noisy/)
})
