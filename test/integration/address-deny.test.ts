import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import { runPortcullis } from '../helpers/spawn-portcullis.js'
import { curl } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * An IP or CIDR deny rule also refuses names that resolve into it (what Squid's `dst` ACLs and
 * Smokescreen's deny ranges do): a name pinned to 127.0.0.1 meets `deny: 127.0.0.0/8` as the literal
 * would, on plain HTTP, on CONNECT and inside an intercepted tunnel. An IP allow rule opens no name.
 */
t.test('IP and CIDR deny rules cover the address a name resolves to', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${origin.port}]
  resolve: { named.test: 127.0.0.1, paths.test: 127.0.0.1, fine.test: 127.0.0.1, ip-only.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
groups:
  g:
    allow:
      - host: named.test
      - host: paths.test
      - host: 127.0.0.1
    deny:
      - host: 127.0.0.0/8
        ports: [${origin.port}]
      - host: 127.0.0.1
        paths: ["/admin/**"]
  h:
    allow:
      - host: paths.test
      - host: fine.test
    deny:
      - host: 127.0.0.1
        paths: ["/admin/**"]
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
  - { id: ed, token: ${TOKEN_HASH}, groups: [h] }
  - { id: aud, token: ${TOKEN_HASH}, groups: [g], mode: audit }
`,
  )
  const via = (agent: string): string[] => ['--proxy', pc.proxyUrl, '--proxy-user', `${agent}:${TOKEN}`]

  t.test('a plain request to a name in a denied range is denied_by_rule, naming the rule', async (t) => {
    const before = origin.seen.length
    const r = await curl([...via('ci'), `http://named.test:${origin.port}/x`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_by_rule')
    const rec = await pc.waitForRecord<DecisionRecord>((x) => x.id === r.headers['x-portcullis-request-id'])
    t.match(rec, { decision: 'deny', reason: 'denied_by_rule', rule: 'g.deny[0]', address: '127.0.0.1' })
    t.equal(origin.seen.length, before, 'the origin was not reached')
  })

  t.test('so is a CONNECT to such a name', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `named.test:${origin.port}`)
    socket.destroy()
    t.match(head, /^HTTP\/1\.1 403/)
    t.match(head, /X-Portcullis-Decision: denied_by_rule/i)
  })

  t.test('a path-scoped IP deny rule refuses that path of a name resolving there, and only that', async (t) => {
    const denied = await curl([...via('ed'), `http://paths.test:${origin.port}/admin/users`])
    t.equal(denied.status, 403)
    t.equal(denied.headers['x-portcullis-decision'], 'denied_by_rule')
    const encoded = await curl([...via('ed'), '--path-as-is', `http://paths.test:${origin.port}/x/..%2Fadmin/users`])
    t.equal(encoded.headers['x-portcullis-decision'], 'denied_by_rule', 'also as a decoding server reads it')
    const fine = await curl([...via('ed'), `http://fine.test:${origin.port}/public`])
    t.equal(fine.status, 200, 'other paths pass')
    const { socket, head } = await openTunnel(pc.proxyPort, `fine.test:${origin.port}`, 'ed')
    socket.destroy()
    t.match(head, /^HTTP\/1\.1 200/, 'a CONNECT passes: a path rule cannot see inside a tunnel')
  })

  t.test('an IP allow rule opens the literal, never a name because of where it resolves', async (t) => {
    const r = await curl([...via('ci'), `http://ip-only.test:${origin.port}/x`])
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
  })

  t.test('audit mode lets it through, recorded would_deny', async (t) => {
    const r = await curl([...via('aud'), `http://named.test:${origin.port}/audited`])
    t.equal(r.status, 200)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.agent === 'aud' && x.path === '/audited',
    )
    t.match(rec, { reason: 'denied_by_rule', would_deny: true, rule: 'g.deny[0]' })
  })
})

t.test('IP and CIDR deny rules for names: reload, explain, policy tests, budget, approvals', async (t) => {
  const origin = await startHttpOrigin(t)
  const tls = await startHttpsOrigin(t, ['named.test'])
  const policy = (deny: string): string => `upstream:
  ports: [${origin.port}, ${tls.port}]
  resolve: { named.test: 127.0.0.1, other.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(tls.ca.certFile)}
limits: { requests_per_minute: 3 }
groups:
  g:
    allow: [ { host: named.test }, { host: other.test, paths: ["/ok/**"] } ]
    deny: [ ${deny} ]
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`
  const pc = await startPortcullis(t, policy('{ host: 192.0.2.1 }'), {}, { watch: true })
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const health = async (): Promise<{ generation: number }> =>
    (await fetch(`${pc.adminUrl}/healthz`)).json() as Promise<{ generation: number }>

  t.test('a reload that adds one closes an open tunnel to a name resolving into it', async (t) => {
    const { socket, head } = await openTunnel(pc.proxyPort, `named.test:${tls.port}`)
    t.match(head, /^HTTP\/1\.1 200/)
    // Spliced (and tracked) once its ClientHello is through.
    const inner = tlsConnect({ socket, servername: 'named.test', ca: tls.ca.certPem })
    inner.on('error', () => undefined)
    await once(inner, 'secureConnect')
    const closed = once(inner, 'close')
    pc.rewriteConfig(policy('{ host: 127.0.0.0/8 }'))
    t.ok(await until(async () => (await health()).generation === 2), 'reloaded')
    await Promise.race([closed, new Promise((_, no) => setTimeout(() => no(new Error('still open')), 3000))])
    t.pass('the tunnel was closed')
  })

  t.test('explain says what the proxy does, and so do policy tests', async (t) => {
    const r = await runPortcullis([
      'explain',
      '--config',
      pc.configFile,
      '--agent',
      'ci',
      `http://named.test:${origin.port}/x`,
    ])
    t.equal(r.code, 1, r.stderr)
    t.match(r.stdout, /^reason: denied_by_rule$/m)
    const api = await adminCall<{ reason: string; stage: string }>(
      pc.adminUrl,
      'GET',
      `/api/explain?agent=ci&url=${encodeURIComponent(`http://named.test:${origin.port}/x`)}`,
    )
    t.match(api.body, { reason: 'denied_by_rule', stage: 'address' })
    const tests = join(pc.dir, 'address.tests.yaml')
    writeFileSync(tests, `- { agent: ci, request: "GET http://named.test:${origin.port}/x", expect: denied_by_rule }\n`)
    const checked = await runPortcullis(['check', '--config', pc.configFile, '--tests', tests])
    t.equal(checked.code, 0, checked.stdout + checked.stderr)
  })

  t.test('refusals by address consume no requests_per_minute', async (t) => {
    // With a budget of 3 (one spent on the tunnel above), a fourth that consumed would be a 429.
    for (let i = 0; i < 5; i++)
      t.equal(
        (await curl([...via, `http://named.test:${origin.port}/r${i}`])).headers['x-portcullis-decision'],
        'denied_by_rule',
      )
  })

  t.test('an approval lifts it, and the record names the approval', async (t) => {
    const denied = await curl([...via, `http://named.test:${origin.port}/approved`])
    t.equal(denied.headers['x-portcullis-decision'], 'denied_by_rule')
    const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: denied.headers['x-portcullis-request-id'],
      scope: 'exact',
      ttl: '10m',
      reason: 'test',
    })
    t.equal(made.status, 201)
    const r = await curl([...via, `http://named.test:${origin.port}/approved`])
    t.equal(r.status, 200)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/approved' && x.decision === 'allow',
    )
    t.equal(rec.rule, `approval:${made.body.id}`)
    const api = await adminCall<{ decision: string; rule: string }>(
      pc.adminUrl,
      'GET',
      `/api/explain?agent=ci&url=${encodeURIComponent(`http://named.test:${origin.port}/approved`)}`,
    )
    t.match(
      api.body,
      { decision: 'allow', rule: `approval:${made.body.id}` },
      '/api/explain names it as the record does',
    )
  })
})
