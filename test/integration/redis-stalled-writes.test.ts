import t from 'tap'
import { ulid } from 'ulid'
import { adminCall } from '../helpers/admin.js'
import { curl } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { until } from '../helpers/poll.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/**
 * A Redis that stalls (SIGSTOP) takes the admin API's approval and revocation writes into its socket
 * and runs them when it resumes, after the API has answered 503. Those late writes must do nothing:
 * what the admin was told failed does not take effect later, unaudited.
 */
t.test('an approval or revocation answered 503 while Redis stalled does not apply when it resumes', async (t) => {
  const redis = await startRedis(t)
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(redis.url)} }`,
    }),
  )
  const checker = redisClient(t, redis.url)
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const url = `http://origin.test:${origin.port}/private/stalled.txt`
  const status = async (): Promise<number> => (await curl([...proxy, url])).status
  const blocked = await curl([...proxy, url])
  t.equal(blocked.status, 403)
  const requestId = blocked.headers['x-portcullis-request-id'] as string
  t.ok(
    await until(async () => (await checker.exists('portcullis:approvals').catch(() => -1)) === 0, 2000),
    'no approvals stored yet',
  )
  const approvals = async (): Promise<Array<{ id: string }>> =>
    (await adminCall<{ approvals: Array<{ id: string }> }>(pc.adminUrl, 'GET', '/api/approvals')).body.approvals

  t.test('a new approval', async (t) => {
    redis.pause()
    const refused = await adminCall<{ error: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      ttl: '1h',
    })
    redis.resume()
    t.match(
      refused,
      { status: 503, body: { error: 'approvals_unavailable', message: /was not done: retry once Redis is back/ } },
      'answered 503 while Redis stalled, saying it was not done',
    )
    // Redis has now run what it held; give every instance a resync to see whatever it wrote.
    await new Promise((r) => setTimeout(r, 1500))
    t.equal(await checker.hlen('portcullis:approvals'), 0, 'Redis holds no approval')
    t.same(await approvals(), [], 'none is listed')
    t.equal(await status(), 403, 'the request is still refused')
  })

  t.test("a request this instance's memory does not hold: 503, not 404", async (t) => {
    // Another instance or worker may have made it; with the stream unreadable nobody can tell.
    const elsewhere = ulid()
    redis.pause()
    const answer = await adminCall<{ error: string }>(pc.adminUrl, 'POST', '/api/approvals', { request_id: elsewhere })
    redis.resume()
    t.match(answer, { status: 503, body: { error: 'approvals_unavailable' } })
    t.match(
      await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: elsewhere }),
      {
        status: 404,
        body: { error: 'unknown_request' },
      },
      'and 404 once Redis answers that no instance made it',
    )
  })

  t.test('a revocation', async (t) => {
    const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      ttl: '1h',
    })
    t.equal(made.status, 201)
    t.ok(await until(async () => (await status()) === 200, 2000), 'the approval applies')
    redis.pause()
    const refused = await adminCall<{ message: string }>(
      pc.adminUrl,
      'DELETE',
      `/api/approvals/${made.body.id}?by=alice`,
    )
    redis.resume()
    t.equal(refused.status, 503, 'answered 503 while Redis stalled')
    t.match(refused.body.message, /was not done: retry once Redis is back/, 'saying it was not done')
    await new Promise((r) => setTimeout(r, 1500))
    t.equal(await checker.hlen('portcullis:approvals'), 1, 'Redis still holds the approval')
    t.equal(await status(), 200, 'which still applies')
    const again = await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}?by=alice`)
    t.equal(again.status, 200, 'so revoking it again works (it answered 404 unknown_approval)')
    const audit = await pc.waitForRecord((r) => r.event === 'approval' && r.action === 'revoke')
    t.match(audit, { actor: 'alice', approval_id: made.body.id }, 'and the revocation is recorded')
  })
})
