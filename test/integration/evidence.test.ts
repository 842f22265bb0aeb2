import { Agent, request } from 'node:http'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * One agent's flood of denials (and of allowed traffic) cannot push another agent's denial out of
 * the record an analyst reviews and approves from, nor grow the log without bound.
 */
t.test('evidence survives a flood', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      agents: { victim: '', noisy: 'limits: { requests_per_minute: 100000 }' },
      extra: 'telemetry: { memory: { size: 200 } }',
    }),
  )
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => agent.destroy())
  const get = (user: string, path: string, localAddress = '127.0.0.1'): Promise<{ status: number; id: string }> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: pc.proxyPort,
          path: `http://origin.test:${origin.port}${path}`,
          headers: { 'proxy-authorization': basicAuth(user, TOKEN) },
          agent: localAddress === '127.0.0.1' ? agent : false,
          localAddress,
        },
        (res) => {
          res.resume()
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, id: String(res.headers['x-portcullis-request-id']) }),
          )
        },
      )
      req.on('error', reject)
      req.end()
    })

  const blocked = await get('victim', '/private/report.txt', '127.0.0.9')
  t.equal(blocked.status, 403)

  // 2,000 denials and 1,000 allowed requests from another agent, six at a time, as fast as they go.
  let denied = 0
  for (let wave = 0; wave < 500; wave++) {
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        // The same denied request again and again (only identical denials fold), allowed ones all different.
        get('noisy', i % 3 === 2 ? `/public/ok-${wave}-${i}` : `/private/${'x'.repeat(3000)}-flood`),
      ),
    )
    denied += answers.filter((a) => a.status === 403).length
  }
  t.equal(denied, 2000, 'every flood request was answered')

  const events = await adminCall<{ events: DecisionRecord[] }>(
    pc.adminUrl,
    'GET',
    '/api/events?decision=deny&agent=victim',
  )
  t.ok(
    events.body.events.some((r) => r.id === blocked.id),
    "the victim's denial is still in the record the page and `blocked` read",
  )
  const approval = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
    request_id: blocked.id,
    scope: 'exact',
    ttl: '1h',
    reason: 'needed for the report',
  })
  t.equal(approval.status, 201, 'and an approval can be made from it')

  const noisy = pc.decisions().filter((r) => r.agent === 'noisy' && r.decision === 'deny')
  t.ok(noisy.length < 2000, `the flood is folded: ${noisy.length} records for 2000 denials`)
  const folded = noisy.filter((r) => (r.repeats ?? 0) > 0)
  t.ok(folded.length > 0, 'records stand for the repeats they fold')
  t.ok(
    noisy.every((r) => (r.path ?? '').length <= 1024 && r.path_sha256 !== undefined),
    'long paths are cut, with the hash of the whole',
  )
  const metrics = await (
    await fetch(`${pc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${pc.adminToken}` } })
  ).text()
  t.match(metrics, /portcullis_requests_total\{decision="deny",reason="denied_path",agent="noisy"\} 2000/)
  t.match(metrics, /portcullis_records_folded_total [1-9]/)
})
