import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
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
