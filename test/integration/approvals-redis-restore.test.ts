import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import { adminCall } from '../helpers/admin.js'
import { proxiedGet } from '../helpers/clients.js'
import { originOnlyYaml } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { until, waitFor } from '../helpers/poll.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { listeningAt, MAIN, spawnPortcullis, startInstance, type Instance } from '../helpers/spawn-portcullis.js'

/**
 * Approvals shared through Redis (SPEC §7) when Redis forgets: two `portcullis start` processes on
 * one redis-server. A revoked approval that Redis holds again (restored from an older snapshot)
 * stays revoked; approvals an emptied Redis lost are written back, and it is logged.
 */

const ADMIN_TOKEN = 'approvals-restore-admin-token-0123456789'
const HASH = 'portcullis:approvals'

/** Approve (exact, 1 h) what `x` refuses at `url`, through its admin API; the approval's id. */
async function approveBlocked(t: Test, x: Instance, url: string): Promise<string> {
  const blocked = await proxiedGet(x.proxyPort, url)
  t.equal(blocked.status, 403)
  const made = await adminCall<{ id: string }>(
    x.adminUrl,
    'POST',
    '/api/approvals',
    { request_id: blocked.headers['x-portcullis-request-id'], scope: 'exact', ttl: '1h' },
    ADMIN_TOKEN,
  )
  t.equal(made.status, 201)
  return made.body.id
}

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} does not exist: run \`npm run build\` first (npm test does)`)
} else {
  t.test('approvals on two instances survive a Redis that forgets', async (t) => {
    const redis = await startRedis(t)
    const origin = await startHttpOrigin(t)
    const body = originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:restore" }`,
    })
    const start = () => startInstance(t, body, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN })
    const [a, b] = await Promise.all([start(), start()])
    const check = redisClient(t, redis.url)
    const at = (path: string): string => `http://origin.test:${origin.port}${path}`
    const status = async (x: Instance, path: string): Promise<number> =>
      proxiedGet(x.proxyPort, at(path)).then(
        (r) => r.status,
        () => 0,
      )
    const both = async (path: string): Promise<number[]> => [await status(a, path), await status(b, path)]
    const approve = (path: string): Promise<string> => approveBlocked(t, a, at(path))
    const listed = async (x: Instance): Promise<string[]> =>
      (
        await adminCall<{ approvals: Array<{ id: string }> }>(
          x.adminUrl,
          'GET',
          '/api/approvals',
          undefined,
          ADMIN_TOKEN,
        )
      ).body.approvals.map((x) => x.id)
    const logged = (code: string) => [a, b].flatMap((x) => x.proc.parsed().filter((l) => l.code === code))

    const revokedId = await approve('/private/revoked.txt')
    const keptId = await approve('/private/kept.txt')
    t.ok(
      await until(
        async () =>
          (await both('/private/revoked.txt')).every((s) => s === 200) &&
          (await both('/private/kept.txt')).every((s) => s === 200),
        3000,
        50,
      ),
      'both approvals apply on both instances',
    )
    // What a snapshot taken now holds of the approval about to be revoked.
    const snapshot = await check.hget(HASH, revokedId)
    t.ok(snapshot !== null)
    t.equal(
      (await adminCall(b.adminUrl, 'DELETE', `/api/approvals/${revokedId}`, undefined, ADMIN_TOKEN)).status,
      200,
      'revoked on B',
    )
    t.ok(
      await until(async () => (await both('/private/revoked.txt')).every((s) => s === 403), 2000, 50),
      'refused on both instances',
    )

    t.test('Redis restored from a snapshot older than the revocation: it stays revoked', async (t) => {
      // The older copy: the approval as it was, and no trace of its revocation. No announcement: a
      // restarted Redis sends none, so only the instances' resync (every 5 s) sees it.
      await check
        .multi()
        .hset(HASH, revokedId, snapshot ?? '')
        .hdel(HASH, `revoked:${revokedId}`)
        .exec()
      const seen: number[] = []
      const deadline = Date.now() + 6500
      while (Date.now() < deadline) {
        seen.push(...(await both('/private/revoked.txt')))
        await new Promise((r) => setTimeout(r, 100))
      }
      t.same([...new Set(seen)], [403], `refused on both instances throughout two resyncs (${seen.length} requests)`)
      t.equal(await check.hexists(HASH, revokedId), 0, 'deleted from Redis again')
      t.equal(await check.hexists(HASH, `revoked:${revokedId}`), 1, 'with its revocation')
      t.notOk((await listed(a)).includes(revokedId), 'A does not list it')
      t.notOk((await listed(b)).includes(revokedId), 'nor does B')
      t.match(logged('PC_APPROVALS_REVOKED_AGAIN')[0], { level: 'warn', removed_again: 1, ids: [revokedId] })
      t.same(await both('/private/kept.txt'), [200, 200], 'the other approval still applies')
    })

    t.test('Redis emptied (a flush, a restart without persistence): approvals are written back', async (t) => {
      await check.flushall()
      await waitFor('PC_APPROVALS_RESTORED in a log', () => logged('PC_APPROVALS_RESTORED').length > 0, 8000)
      t.match(logged('PC_APPROVALS_RESTORED')[0], { level: 'warn', restored: 1, removals_restored: 1 })
      await waitFor('Redis to hold both again', async () => (await check.hlen(HASH)) === 2, 3000)
      t.equal(await check.hexists(HASH, keptId), 1, 'the approval')
      t.equal(await check.hexists(HASH, `revoked:${revokedId}`), 1, 'and the revocation')
      t.same(await both('/private/kept.txt'), [200, 200], 'the approval applies on both instances')
      t.same(await both('/private/revoked.txt'), [403, 403], 'the revoked one on neither')
      t.ok((await listed(b)).includes(keptId), 'and is listed')
    })
  })

  t.test('a revocation outlives every instance that saw it, not only the one that made it', async (t) => {
    const redis = await startRedis(t)
    const origin = await startHttpOrigin(t)
    const body = originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(redis.url)}, stream: "pc:restore2" }`,
    })
    const env = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }
    // Each instance has its own directory: A's files are not B's.
    const [a, b] = await Promise.all([startInstance(t, body, env), startInstance(t, body, env)])
    const check = redisClient(t, redis.url)
    const url = `http://origin.test:${origin.port}/private/gone.txt`
    const id = await approveBlocked(t, a, url)
    const snapshot = await check.hget(HASH, id)
    t.ok(snapshot !== null)
    t.equal(
      (await adminCall(b.adminUrl, 'DELETE', `/api/approvals/${id}`, undefined, ADMIN_TOKEN)).status,
      200,
      'revoked on B',
    )
    t.ok(await until(async () => (await proxiedGet(a.proxyPort, url)).status === 403, 2000, 50), 'A learns it')
    await new Promise((r) => setTimeout(r, 300))
    for (const x of [a, b]) {
      x.proc.child.kill('SIGTERM')
      await x.proc.exited
    }
    // Redis comes back from a snapshot older than the revocation, with every instance restarted.
    await check.flushall()
    await check.hset(HASH, id, snapshot ?? '')
    const again = spawnPortcullis(t, a.config, env)
    const { proxyPort } = listeningAt(await again.waitLine((r) => r.code === 'PC_STARTED'))
    await again.waitLine((r) => r.code === 'PC_APPROVALS_REVOKED_AGAIN', 10_000)
    t.equal((await proxiedGet(proxyPort, url)).status, 403, 'A alone, restarted, keeps it revoked')
    t.equal(await check.hexists(HASH, id), 0, 'deleted from Redis again')
    t.equal(await check.hexists(HASH, `revoked:${id}`), 1, 'with its revocation')
  })
}
