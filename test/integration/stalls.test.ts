import { request } from 'node:http'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'

/**
 * One agent's hostile request must not stall the event loop for the others: while it is decided,
 * another agent's plain request is answered within a bound.
 */
function timedGet(
  port: number,
  url: string,
  user: string,
  body?: { readonly bytes: Buffer; readonly encoding: string },
): Promise<{ status: number; ms: number; decision: string }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'proxy-authorization': basicAuth(user, TOKEN) }
    if (body) Object.assign(headers, { 'content-encoding': body.encoding, 'content-length': body.bytes.length })
    const req = request(
      { host: '127.0.0.1', port, path: url, agent: false, method: body ? 'POST' : 'GET', headers },
      (res) => {
        res.resume()
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            decision: String(res.headers['x-portcullis-decision']),
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(body?.bytes)
  })
}

t.test('adversarial paths against glob patterns do not stall other agents', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port])}
groups:
  g:
    allow:
      - host: origin.test
        paths: ["/pkg/*-*.*.*.tgz", "/**/a/**/a/**/b"]
  h:
    allow:
      - host: other.test
agents:
  - { id: attacker, token: ${TOKEN_HASH}, groups: [g] }
  - { id: bystander, token: ${TOKEN_HASH}, groups: [h] }
`,
  )
  const base = `http://origin.test:${origin.port}`
  const attacks = [
    `${base}/pkg/${'-.'.repeat(2000)}`, // 4 KB: seconds per match with a backtracking regex
    `${base}${'/a'.repeat(3200)}`, // 6.4 KB of /a segments against /**/a/**/a/**/b
  ]
  for (const url of attacks) {
    const running = Promise.all(Array.from({ length: 4 }, () => timedGet(pc.proxyPort, url, 'attacker')))
    const probe = await timedGet(pc.proxyPort, `http://other.test:${origin.port}/x`, 'bystander')
    const answers = await running
    t.equal(probe.status, 200)
    t.ok(probe.ms < 1000, `the bystander was answered in ${probe.ms.toFixed(1)} ms while the attack ran`)
    t.ok(
      answers.every((a) => a.status === 403 && a.ms < 1000),
      `the attacker was refused promptly (${answers.map((a) => a.ms.toFixed(1)).join(', ')} ms)`,
    )
  }
})

t.test('compressed uploads to an inspected host do not stall other agents', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port])}
groups:
  g:
    allow:
      - host: origin.test
        inspect_body: true
  h:
    allow:
      - host: other.test
agents:
  - { id: uploader, token: ${TOKEN_HASH}, groups: [g] }
  - { id: bystander, token: ${TOKEN_HASH}, groups: [h] }
`,
  )
  // 8 KB of gzip that inflates to 8 MiB: each froze the proxy for seconds when inflated and rescanned whole.
  const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x61), { level: 9 })
  t.ok(bomb.length < 16 * 1024)
  const running = Promise.all(
    Array.from({ length: 6 }, () =>
      timedGet(pc.proxyPort, `http://origin.test:${origin.port}/up`, 'uploader', { bytes: bomb, encoding: 'gzip' }),
    ),
  )
  const probe = await timedGet(pc.proxyPort, `http://other.test:${origin.port}/x`, 'bystander')
  const answers = await running
  t.equal(probe.status, 200)
  t.ok(probe.ms < 1000, `the bystander was answered in ${probe.ms.toFixed(1)} ms`)
  t.ok(
    answers.every((a) => a.status === 403 && a.decision === 'denied_secret_detected'),
    'each bomb is refused as uninspectable (fail closed)',
  )
  t.equal(origin.seen.length, 1, 'only the bystander reached the origin')
})
