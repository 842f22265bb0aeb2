import t from 'tap'
import type { Test } from 'tap'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, type Origin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'
import { CLOSED_PORT } from '../helpers/ports.js'

/**
 * The three behaviours asserted for both ways of turning audit on:
 * audited agent passes what no rule allows (recorded as a would-be deny),
 * audited agent is still blocked from private addresses, and an enforcing
 * agent in the same config is still blocked.
 */
function auditBehaviours(t: Test, setup: () => Promise<Setup>, enforcedAgent: string): void {
  t.test('a request no rule allows passes, recorded as deny/denied_no_rule with would_deny', async (t) => {
    const { pc, origin } = await setup()
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `auditor:${TOKEN}`,
      `http://other.test:${origin.port}/no-rule`,
    ])
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/no-rule/)
    t.notOk(r.headers['x-portcullis-decision'], 'no denial header on a passed request')
    t.equal(origin.seen.at(-1)?.url, '/no-rule', 'origin reached')
    t.equal(origin.seen.at(-1)?.headers.host, `other.test:${origin.port}`)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/no-rule')
    t.match(rec, {
      agent: 'auditor',
      decision: 'deny',
      reason: 'denied_no_rule',
      rule: null,
      mode: 'audit',
      would_deny: true,
      address: '127.0.0.1',
    })
  })

  t.test('a CONNECT that would be denied and then fails upstream keeps its would_deny record', async (t) => {
    const { pc, closedPort } = await setup()
    // No rule allows other.test; audit lets the CONNECT through, and the dial is refused (nothing listens).
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `auditor:${TOKEN}`,
      '--proxytunnel',
      `https://other.test:${closedPort}/`,
    ])
    t.equal(r.status, 502, "the failure is the upstream's")
    const mine = (x: { event: string; host?: string; port?: number; method?: string }): boolean =>
      x.event === 'decision' && x.method === 'CONNECT' && x.host === 'other.test' && x.port === closedPort
    const failed = await pc.waitForRecord(
      (x) => mine(x as never) && (x as { reason?: string }).reason === 'upstream_error',
    )
    const both = pc.decisions().filter((x) => mine(x))
    t.match(
      both,
      [
        { agent: 'auditor', decision: 'deny', reason: 'denied_no_rule', mode: 'audit', would_deny: true },
        { agent: 'auditor', decision: 'deny', reason: 'upstream_error', would_deny: false },
      ],
      'the policy verdict first, then why it still failed',
    )
    t.equal(both.length, 2, 'two records')
    t.equal(both[0]?.id, failed.id, 'of one request')
  })

  t.test('an allowed request is recorded as allow without would_deny', async (t) => {
    const { pc, origin } = await setup()
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `auditor:${TOKEN}`,
      `http://origin.test:${origin.port}/allowed`,
    ])
    t.equal(r.status, 200)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/allowed')
    t.match(rec, { decision: 'allow', reason: 'allowed', rule: 'g.allow[0]', mode: 'audit', would_deny: false })
  })

  t.test('denied_private_address is still enforced in audit mode', async (t) => {
    const { pc, origin } = await setup()
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `auditor:${TOKEN}`,
      `http://private.test:${origin.port}/private`,
    ])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_private_address')
    t.notOk(
      origin.seen.some((s) => s.url === '/private'),
      'origin not reached',
    )
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/private')
    t.match(rec, {
      agent: 'auditor',
      decision: 'deny',
      reason: 'denied_private_address',
      mode: 'audit',
      would_deny: false,
    })
  })

  t.test('an enforce-mode agent in the same config is still blocked', async (t) => {
    const { pc, origin } = await setup()
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `${enforcedAgent}:${TOKEN}`,
      `http://other.test:${origin.port}/enforced`,
    ])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
    t.notOk(
      origin.seen.some((s) => s.url === '/enforced'),
      'origin not reached',
    )
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/enforced')
    t.match(rec, {
      agent: enforcedAgent,
      decision: 'deny',
      reason: 'denied_no_rule',
      mode: 'enforce',
      would_deny: false,
    })
  })
}

interface Setup {
  readonly pc: Portcullis
  readonly origin: Origin
  /** An allowed port on loopback where nothing listens. */
  readonly closedPort: number
}

/** Start once per parent test, lazily, so each child test shares the proxy and origin. */
function lazy(t: Test, body: (ports: readonly number[]) => string): () => Promise<Setup> {
  let started: Promise<Setup> | null = null
  return () =>
    (started ??= (async () => {
      const origin = await startHttpOrigin(t)
      const closedPort = CLOSED_PORT
      const pc = await startPortcullis(t, body([origin.port, closedPort]))
      return { pc, origin, closedPort }
    })())
}

const GROUPS = `groups:
  g:
    allow:
      - host: origin.test
      - host: private.test
`

t.test('top-level mode: audit', async (t) => {
  auditBehaviours(
    t,
    lazy(
      t,
      (ports) => `mode: audit
${upstreamYaml(ports)}
${GROUPS}
agents:
  - id: auditor
    token: ${TOKEN_HASH}
    groups: [g]
  - id: strict
    token: ${TOKEN_HASH}
    groups: [g]
    mode: enforce
`,
    ),
    'strict',
  )
})

t.test('per-agent mode: audit', async (t) => {
  auditBehaviours(
    t,
    lazy(
      t,
      (ports) => `${upstreamYaml(ports)}
${GROUPS}
agents:
  - id: auditor
    token: ${TOKEN_HASH}
    groups: [g]
    mode: audit
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
    ),
    'ci',
  )
})
