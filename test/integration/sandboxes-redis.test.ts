import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import { ulid } from 'ulid'
import { proxiedGet as proxiedAnswer } from '../helpers/clients.js'
import { upstreamYaml, writeConfig } from '../helpers/config.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { CLOSED_PORT, freePort } from '../helpers/ports.js'
import { redisClient, redisServer, startRedis } from '../helpers/redis.js'
import { clearOfMinuteEnd, waitFor } from '../helpers/poll.js'
import {
  listeningAt,
  MAIN,
  runPortcullis,
  spawnPortcullis,
  startInstance,
  type PortcullisProcess,
} from '../helpers/spawn-portcullis.js'
import { openTunnel } from '../helpers/tunnel.js'
import { encodeStreamEntry } from '../../src/redis/stream-entry.js'

/**
 * Sandbox credentials through the real program (SPEC §9): two `portcullis start` processes on one
 * redis-server and one signing key; the CLI signs offline a credential both accept; a revocation
 * made on one instance closes the sandbox's open tunnel on the other within a second; a sandbox's
 * budget is shared by the instances.
 */

const ADMIN_TOKEN = 'sandboxes-redis-admin-token-0123456789'
const KEY = randomBytes(32).toString('base64')
const RPM = 6

/** The built CLI, run to completion (killed after 20 s, which fails the assertion on its code). */
const portcullis = (args: readonly string[], env: NodeJS.ProcessEnv) => runPortcullis(args, { env, timeoutMs: 20_000 })

/** `sandbox issue` for agent ci with this ttl, then `more` arguments. */
const issueArgs = (ttl: string, ...more: string[]): string[] => [
  'sandbox',
  'issue',
  '--agent',
  'ci',
  '--ttl',
  ttl,
  ...more,
]

interface Issued {
  readonly id: string
  readonly user: string
  readonly token: string
  readonly proxy_url: string
  readonly labels: Record<string, string>
}

/** Agent ci as a sandbox template allowed origin.test, with Redis at `redis` (the YAML map). */
function sandboxConfig(upstream: string, redis: string, agentExtra = ''): string {
  return `${upstream}
telemetry:
  redis: ${redis}
identity: { max_sandbox_ttl: 24h }
groups:
  g:
    allow:
      - host: origin.test
agents:
  - { id: ci, groups: [g], sandboxes: true${agentExtra} }
`
}

/** The last answer that was not a 200, for assertion messages. */
let lastRefusal = ''

/** One absolute-form GET through the proxy (no pool: each request stands alone); its status. */
async function proxiedGet(proxyPort: number, url: string, user: string, password: string): Promise<number> {
  const res = await proxiedAnswer(proxyPort, url, user, password)
  if (res.status !== 200) lastRefusal = `${res.status} ${res.body.slice(0, 300)}`
  return res.status
}

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} does not exist: run \`npm run build\` first (npm test does)`)
} else {
  t.test('sandbox credentials on two instances sharing one Redis', async (t) => {
    const redis = await startRedis(t)
    const origin = await startHttpOrigin(t)
    const tlsOrigin = await startHttpsOrigin(t, ['origin.test'])
    const body = sandboxConfig(
      upstreamYaml([origin.port, tlsOrigin.port], `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}`),
      `{ url: ${JSON.stringify(redis.url)}, stream: "pc:sandboxes", maxlen: 100000 }`,
      `, limits: { requests_per_minute: ${RPM} }`,
    )
    const serverEnv = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY }
    const start = () => startInstance(t, body, serverEnv, { sharedLimits: true })
    const [a, b] = await Promise.all([start(), start()])
    const at = (path: string): string => `http://origin.test:${origin.port}${path}`

    // Offline: the key in the CLI's environment, and an admin URL nothing listens on (it must not be asked).
    const offlineEnv = { PORTCULLIS_SIGNING_KEY: KEY }
    const unreachable = `http://127.0.0.1:${CLOSED_PORT}`
    const offline = await portcullis(
      issueArgs(
        '1h',
        '--label',
        'task=T-9',
        '--label',
        'team=infra',
        '--proxy',
        `127.0.0.1:${a.proxyPort}`,
        '--admin',
        unreachable,
        '--json',
        '--config',
        a.config,
      ),
      offlineEnv,
    )
    t.equal(offline.code, 0, offline.stderr)
    const s = JSON.parse(offline.stdout) as Issued
    t.match(s, { user: `ci+${s.id}`, labels: { task: 'T-9', team: 'infra' } })
    t.equal(s.proxy_url, `http://${s.user}:${s.token}@127.0.0.1:${a.proxyPort}`)

    t.test('the human form prints the fields and ready-to-paste proxy lines', async (t) => {
      const r = await portcullis(issueArgs('30m', '--label', 'task=T-10', '--config', a.config), offlineEnv)
      t.equal(r.code, 0, r.stderr)
      t.match(r.stdout, /^id: {9}[0-9A-Z]{26}$/m)
      t.match(r.stdout, /^user: {7}ci\+[0-9A-Z]{26}$/m)
      t.match(r.stdout, /^labels: {5}task=T-10$/m)
      t.match(r.stdout, /^token: {6}pcs1\./m)
      for (const v of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'])
        t.match(r.stdout, new RegExp(`^export ${v}='http://ci\\+[0-9A-Z]{26}:pcs1\\.`, 'm'))
    })

    t.test('--proxy must be HOST:PORT: it goes into the URL the sandbox is given', async (t) => {
      for (const bad of ['nothostport', 'host:', 'host:99999', '::1:3128']) {
        const r = await portcullis(issueArgs('30m', '--proxy', bad, '--config', a.config), offlineEnv)
        t.equal(r.code, 2, bad)
        t.match(r.stderr, /is not HOST:PORT/)
      }
    })

    t.test('the CLI without the key asks the admin API, which answers the same fields', async (t) => {
      const r = await portcullis(
        issueArgs('1h', '--label', 'via=api', '--json', '--admin', b.adminUrl, '--config', b.config),
        { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN },
      )
      t.equal(r.code, 0, r.stderr)
      const viaApi = JSON.parse(r.stdout) as Issued
      t.match(viaApi, { user: `ci+${viaApi.id}`, labels: { via: 'api' }, proxy_url: new RegExp(`:${b.proxyPort}$`) })
      const elsewhere = await portcullis(
        issueArgs('1h', '--proxy', 'proxy.internal:3128', '--json', '--admin', b.adminUrl, '--config', b.config),
        { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN },
      )
      t.equal(elsewhere.code, 0, elsewhere.stderr)
      const addressed = JSON.parse(elsewhere.stdout) as Issued & { proxy_env: Record<string, string> }
      t.match(addressed.proxy_url, /@proxy\.internal:3128$/, '--proxy addresses the lines the API answered')
      t.match(addressed.proxy_env.HTTPS_PROXY, /@proxy\.internal:3128$/)
      t.equal(
        await proxiedGet(a.proxyPort, at('/via-api'), viaApi.user, viaApi.token),
        200,
        `and the other instance accepts it (${lastRefusal})`,
      )
      // What offline signing refuses as a usage error (exit 2), the API's refusal is too.
      for (const [what, args] of [
        ['a ttl past max_sandbox_ttl', issueArgs('48h')],
        ['an agent the config does not have', ['sandbox', 'issue', '--agent', 'nobody', '--ttl', '1h']],
      ] as const) {
        const viaKey = await portcullis([...args, '--config', b.config], offlineEnv)
        const viaAdmin = await portcullis([...args, '--admin', b.adminUrl, '--config', b.config], {
          PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
        })
        t.equal(viaKey.code, 2, `${what}, offline: ${viaKey.stderr}`)
        t.equal(viaAdmin.code, 2, `${what}, through the API: ${viaAdmin.stderr}`)
        t.match(viaAdmin.stderr, viaKey.stderr.trim(), 'with the same message')
      }
      const noKey = await portcullis(issueArgs('1h', '--admin', unreachable, '--config', a.config), {})
      t.equal(noKey.code, 1, 'without key or reachable API it fails, saying so')
      t.match(noKey.stderr, /cannot reach the admin API/)
    })

    t.test('revoked at once on both instances: one revocation stands, and both answers name it', async (t) => {
      const id = ulid()
      const revoke = async (adminUrl: string, by: string): Promise<Record<string, unknown>> => {
        const res = await fetch(`${adminUrl}/api/sandboxes/${id}?by=${by}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        })
        t.equal(res.status, 200)
        return (await res.json()) as Record<string, unknown>
      }
      const answers = await Promise.all([revoke(a.adminUrl, 'alice'), revoke(b.adminUrl, 'bob')])
      t.equal(answers.filter((x) => x.already === true).length, 1, 'one answer says it was already revoked')
      t.equal(answers[0]?.revoked_by, answers[1]?.revoked_by, 'and both name the one revoker stored')
      const stored = JSON.parse((await redisClient(t, redis.url).hget('portcullis:sandbox-revocations', id)) ?? '{}')
      t.equal(stored.revoked_by, answers[0]?.revoked_by)
    })

    t.test('the offline credential works on both instances, with no storage', async (t) => {
      t.equal(await proxiedGet(a.proxyPort, at('/on-a'), s.user, s.token), 200, lastRefusal)
      t.equal(await proxiedGet(b.proxyPort, at('/on-b'), s.user, s.token), 200, lastRefusal)
      const rec = await b.proc.waitLine((r) => r.event === 'decision' && r.path === '/on-b')
      t.match(rec, { agent: 'ci', sandbox: s.id, labels: { task: 'T-9', team: 'infra' }, decision: 'allow' })
    })

    t.test("a sandbox's budget is shared by the instances, and is its own", async (t) => {
      await clearOfMinuteEnd()
      const issueOffline = async (): Promise<Issued> =>
        JSON.parse((await portcullis(issueArgs('10m', '--json', '--config', a.config), offlineEnv)).stdout) as Issued
      const l = await issueOffline()
      const statuses: number[] = []
      for (let i = 0; i < 2 * RPM; i++)
        statuses.push(await proxiedGet((i % 2 === 0 ? a : b).proxyPort, at(`/budget-${i}`), l.user, l.token))
      const admitted = statuses.filter((x) => x === 200).length
      t.ok(
        admitted >= RPM - 1 && admitted <= RPM + 1,
        `admitted ${admitted} of ${2 * RPM} against ${RPM}/min: ${statuses}`,
      )
      t.ok(statuses.every((x) => x === 200 || x === 429))
      const m = await issueOffline()
      t.equal(
        await proxiedGet(b.proxyPort, at('/fresh'), m.user, m.token),
        200,
        'another sandbox of the agent has its own',
      )
    })

    t.test('revoked with the CLI on one instance: the other closes the tunnel within a second', async (t) => {
      // Shared limits may refuse a first request at an instance where the sandbox was quiet until its next
      // sync (limits/limiter.ts, "the price of exactness"): a 429 is tried again.
      let tunnel = await openTunnel(b.proxyPort, `origin.test:${tlsOrigin.port}`, s.user, s.token)
      for (let i = 0; i < 5 && / 429 /.test(tunnel.head.split('\r\n')[0] ?? ''); i++) {
        tunnel.socket.destroy()
        await new Promise((r) => setTimeout(r, 200))
        tunnel = await openTunnel(b.proxyPort, `origin.test:${tlsOrigin.port}`, s.user, s.token)
      }
      const { socket, head } = tunnel
      t.match(head, /^HTTP\/1\.1 200 /, head)
      const tls: TLSSocket = tlsConnect({
        socket,
        servername: 'origin.test',
        ca: readFileSync(tlsOrigin.ca.certFile, 'utf8'),
      })
      tls.on('error', () => undefined)
      await once(tls, 'secureConnect')
      let closedAt = 0
      tls.once('close', () => (closedAt = Date.now()))
      const r = await portcullis(
        ['sandbox', 'revoke', s.id, '--by', 'platform', '--admin', a.adminUrl, '--config', a.config],
        {
          PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
        },
      )
      t.equal(r.code, 0, r.stderr)
      // When the revocation was made: instance a's log line for it.
      const revoked = await a.proc.waitLine((l) => l.code === 'PC_SANDBOX_REVOKED' && l.sandbox === s.id, 2000)
      const revokedAt = Date.parse(String(revoked.time))
      t.match(r.stdout, new RegExp(`revoked sandbox ${s.id} \\(agent ci\\)`))
      await waitFor('the tunnel on the other instance to close', () => closedAt > 0, 2000)
      t.ok(closedAt - revokedAt < 1000, `closed ${closedAt - revokedAt} ms after instance a revoked it`)
      await b.proc.waitLine((l) => l.code === 'PC_SANDBOX_CLOSED' && l.sandbox === s.id, 2000)
      t.equal(await proxiedGet(b.proxyPort, at('/after'), s.user, s.token), 407, 'new requests on it are refused')
      t.equal(await proxiedGet(a.proxyPort, at('/after'), s.user, s.token), 407)

      t.test('portcullis blocked --sandbox and --label show its refusals', async (t) => {
        const byId = await portcullis(
          ['blocked', '--sandbox', s.id, '--json', '--admin', b.adminUrl, '--config', b.config],
          {
            PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
          },
        )
        t.equal(byId.code, 0, byId.stderr)
        const rows = byId.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>)
        t.ok(rows.length >= 2, `${rows.length} rows`)
        t.ok(rows.every((x) => x.sandbox === s.id && x.detail === 'revoked' && x.agent === 'ci'))
        const byLabel = await portcullis(
          ['blocked', '--label', 'task=T-9', '--admin', a.adminUrl, '--config', a.config],
          {
            PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
          },
        )
        t.equal(byLabel.code, 0, byLabel.stderr)
        t.match(byLabel.stdout, new RegExp(`ci\\+${s.id}`))
        t.match(byLabel.stdout, /denied_auth_invalid/)
      })

      t.test('portcullis sandbox list shows it seen and revoked, from either instance', async (t) => {
        const list = await portcullis(['sandbox', 'list', '--admin', b.adminUrl, '--config', b.config], {
          PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
        })
        t.equal(list.code, 0, list.stderr)
        t.match(list.stdout, new RegExp(`^${s.id}  ci +task=T-9,team=infra +\\S+ +[1-9]\\d* +[1-9]\\d* +revoked$`, 'm'))
        t.match(list.stdout, /^revoked \(2\):$/m, 'this one, and the one revoked at once on both instances')
        t.match(list.stdout, new RegExp(`^${s.id} +ci +\\S+ +platform `, 'm'))
      })

      t.test('a Redis that lost its data (restarted without persistence) does not un-revoke it', async (t) => {
        await redis.kill()
        await redis.start()
        // Each instance resyncs when its connection is back, finds the revocation gone, keeps it and writes
        // it back (whichever comes first; the other then reads it there).
        const check = redisClient(t, redis.url)
        const held = async (): Promise<string | null> =>
          check.hget('portcullis:sandbox-revocations', s.id).catch(() => null)
        await waitFor('the revocation to be written back', async () => (await held()) !== null, 15_000)
        t.match(JSON.parse((await held()) ?? 'null'), { id: s.id, revoked_by: 'platform' }, 'as first made')
        await waitFor('PC_SANDBOX_REVOCATIONS_RESTORED in a log', () =>
          [a, b].some((x) => x.proc.parsed().some((l) => l.code === 'PC_SANDBOX_REVOCATIONS_RESTORED')),
        )
        t.equal(await proxiedGet(b.proxyPort, at('/after-flush'), s.user, s.token), 407, lastRefusal)
        t.equal(await proxiedGet(a.proxyPort, at('/after-flush'), s.user, s.token), 407)
      })
    })
  })

  t.test(
    'an instance that has not read the revocations (Redis down since it started) accepts no sandbox',
    async (t) => {
      const redis = redisServer(t, await freePort())
      const origin = await startHttpOrigin(t)
      const body = sandboxConfig(upstreamYaml([origin.port]), `{ url: ${JSON.stringify(redis.url)} }`)
      const c = await startInstance(t, body, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY })
      const issued = await portcullis(issueArgs('1h', '--json', '--config', c.config), { PORTCULLIS_SIGNING_KEY: KEY })
      t.equal(issued.code, 0, issued.stderr)
      const s = JSON.parse(issued.stdout) as Issued
      const url = `http://origin.test:${origin.port}/while-unknown`
      const refused = await proxiedAnswer(c.proxyPort, url, s.user, s.token, { accept: 'application/json' })
      t.equal(refused.status, 407, refused.body)
      t.match(JSON.parse(refused.body), { reason: 'denied_auth_invalid', detail: 'revocations_unknown' })
      const health = (await (await fetch(`${c.adminUrl}/healthz`)).json()) as { warnings: string[] }
      t.match(health.warnings.join('\n'), /sandbox revocations not read yet/, '/healthz says why')
      await redis.start()
      await waitFor(
        'the credential to be accepted once the revocations are read',
        async () => (await proxiedGet(c.proxyPort, url, s.user, s.token)) === 200,
        15_000,
      )
      const rec = await c.proc.waitLine(
        (l) => l.event === 'decision' && l.path === '/while-unknown' && l.decision === 'allow',
      )
      t.match(rec, { agent: 'ci', sandbox: s.id }, 'accepted once Redis answered, and recorded')
    },
  )

  t.test('a revocation lands within a second however long the event stream', async (t) => {
    const redis = await startRedis(t)
    const tlsOrigin = await startHttpsOrigin(t, ['origin.test'])
    // 150,000 records of other traffic, written just now: all inside the window a revocation may look
    // through for the credential's record (the old lookup read every one of them before revoking).
    const noise = encodeStreamEntry({
      time: new Date().toISOString(),
      id: ulid(),
      event: 'close',
      agent: 'other',
      host: 'elsewhere.test',
      bytes_up: 1,
      bytes_down: 1,
      duration_ms: 1,
    })
    await redisClient(t, redis.url).eval(
      "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2)) end",
      1,
      'pc:long',
      150_000,
      ...noise,
    )
    const body = sandboxConfig(
      upstreamYaml([tlsOrigin.port], `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}`),
      `{ url: ${JSON.stringify(redis.url)}, stream: "pc:long" }`,
    )
    const serverEnv = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY }
    const [a, b] = await Promise.all([startInstance(t, body, serverEnv), startInstance(t, body, serverEnv)])
    const issued = await portcullis(issueArgs('1h', '--json', '--config', a.config), { PORTCULLIS_SIGNING_KEY: KEY })
    t.equal(issued.code, 0, issued.stderr)
    const s = JSON.parse(issued.stdout) as Issued
    // The tunnel is on b: a has no record of the sandbox in memory, so it asks the stream.
    const { socket, head } = await openTunnel(b.proxyPort, `origin.test:${tlsOrigin.port}`, s.user, s.token)
    t.match(head, /^HTTP\/1\.1 200 /, head)
    const tls: TLSSocket = tlsConnect({ socket, servername: 'origin.test', ca: readFileSync(tlsOrigin.ca.certFile) })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')
    let closedAt = 0
    tls.once('close', () => (closedAt = Date.now()))
    const sentAt = Date.now()
    const res = await fetch(`${a.adminUrl}/api/sandboxes/${s.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    })
    const answeredAt = Date.now()
    t.equal(res.status, 200)
    t.match(await res.json(), { id: s.id, agent: 'ci' }, 'the record was found: the revocation names its agent')
    t.ok(answeredAt - sentAt < 1000, `answered ${answeredAt - sentAt} ms after it was asked`)
    await waitFor('the tunnel on the other instance to close', () => closedAt > 0, 3000)
    t.ok(closedAt - sentAt < 1000, `the tunnel on the other instance closed ${closedAt - sentAt} ms after it was asked`)
  })

  t.test('an emptied Redis: any one instance that restarts restores revocations made on another', async (t) => {
    const redis = await startRedis(t)
    const origin = await startHttpOrigin(t)
    const body = sandboxConfig(upstreamYaml([origin.port]), `{ url: ${JSON.stringify(redis.url)} }`)
    const env = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY }
    // Each instance has its own directory, so its own approvals file and revocations file.
    const [a, b] = await Promise.all([startInstance(t, body, env), startInstance(t, body, env)])
    const issued = await portcullis(issueArgs('1h', '--json', '--config', a.config), { PORTCULLIS_SIGNING_KEY: KEY })
    t.equal(issued.code, 0, issued.stderr)
    const s = JSON.parse(issued.stdout) as Issued
    const url = `http://origin.test:${origin.port}/after-restart`
    t.equal(await proxiedGet(a.proxyPort, url, s.user, s.token), 200, lastRefusal)
    const revoked = await fetch(`${b.adminUrl}/api/sandboxes/${s.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    })
    t.equal(revoked.status, 200, 'revoked on B')
    const fileOfA = join(dirname(a.config), 'sandbox-revocations.yaml')
    await waitFor('A to keep the revocation it learned in its own file', () => {
      try {
        return readFileSync(fileOfA, 'utf8').includes(s.id)
      } catch {
        return false
      }
    })
    for (const x of [a, b]) {
      x.proc.child.kill('SIGTERM')
      await x.proc.exited
    }
    await redisClient(t, redis.url).flushall()

    const again = spawnPortcullis(t, a.config, env)
    const { proxyPort, adminUrl } = listeningAt(await again.waitLine((r) => r.code === 'PC_STARTED'))
    const refused = await proxiedAnswer(proxyPort, url, s.user, s.token, { accept: 'application/json' })
    t.equal(refused.status, 407, 'A alone, restarted, still refuses it')
    t.match(JSON.parse(refused.body), { reason: 'denied_auth_invalid', detail: 'revoked' })
    await again.waitLine((r) => r.code === 'PC_SANDBOX_REVOCATIONS_RESTORED', 10_000)
    t.ok(await redisClient(t, redis.url).hexists('portcullis:sandbox-revocations', s.id), 'and wrote it back to Redis')
    const listed = (await (
      await fetch(`${adminUrl}/api/sandboxes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).json()) as { revoked: Array<{ id: string; revoked_by: string }> }
    t.match(listed.revoked, [{ id: s.id }], 'and lists it revoked')
  })

  t.test('moving between the revocation file and Redis keeps every revocation, both ways', async (t) => {
    const redis = await startRedis(t)
    const origin = await startHttpOrigin(t)
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-move-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const rules = `groups:
  g:
    allow:
      - host: origin.test
agents:
  - { id: ci, groups: [g], sandboxes: true }
`
    const withRedis = `${upstreamYaml([origin.port])}
telemetry:
  redis: { url: ${JSON.stringify(redis.url)} }
${rules}`
    const withFile = `${upstreamYaml([origin.port])}
${rules}`
    const env = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY }
    const run = async (body: string) => {
      const proc = spawnPortcullis(t, writeConfig(dir, body), env)
      return { proc, ...listeningAt(await proc.waitLine((r) => r.code === 'PC_STARTED')) }
    }
    const stop = async (p: { proc: PortcullisProcess }): Promise<void> => {
      p.proc.child.kill('SIGTERM')
      await p.proc.exited
    }
    const issue = async (config: string): Promise<Issued> => {
      const r = await portcullis(issueArgs('1h', '--json', '--config', config), { PORTCULLIS_SIGNING_KEY: KEY })
      t.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as Issued
    }
    const revoke = async (adminUrl: string, id: string): Promise<number> =>
      (
        await fetch(`${adminUrl}/api/sandboxes/${id}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        })
      ).status
    const url = `http://origin.test:${origin.port}/moved`

    const first = await run(withFile)
    const early = await issue(join(dir, 'portcullis.yaml'))
    t.equal(await revoke(first.adminUrl, early.id), 200)
    await stop(first)

    const second = await run(withRedis)
    await second.proc.waitLine((r) => r.code === 'PC_SANDBOX_REVOCATIONS_RESTORED', 10_000)
    t.equal(
      await proxiedGet(second.proxyPort, url, early.user, early.token),
      407,
      'revoked without Redis, still revoked with it',
    )
    t.ok(
      await redisClient(t, redis.url).hexists('portcullis:sandbox-revocations', early.id),
      'and now shared through Redis',
    )
    const late = await issue(join(dir, 'portcullis.yaml'))
    t.equal(await revoke(second.adminUrl, late.id), 200)
    await stop(second)

    const third = await run(withFile)
    t.equal(
      await proxiedGet(third.proxyPort, url, late.user, late.token),
      407,
      'revoked with Redis, still revoked without it',
    )
    t.equal(await proxiedGet(third.proxyPort, url, early.user, early.token), 407)
    await stop(third)
  })
}
