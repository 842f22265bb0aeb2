import t from 'tap'
import { ulid } from 'ulid'
import { parseConfigText } from '../../../src/config/load.js'
import { authenticate, stillAuthenticates } from '../../../src/identity/authenticate.js'
import { limiterKey, sandboxLapse, type SandboxAuth } from '../../../src/identity/sandbox-auth.js'
import { issueSandbox } from '../../../src/identity/sandbox-issue.js'
import { encodeSandboxToken, signingKey } from '../../../src/identity/sandbox-token.js'

const KEY = signingKey(Buffer.alloc(32, 1))
const OLD = signingKey(Buffer.alloc(32, 2))
const NOW = Date.UTC(2026, 10, 25, 10, 0, 0)
const HOUR = 3600_000
const basic = (user: string, token: string): string => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`

const POLICY = parseConfigText(
  `groups: { g: { allow: [ { host: a.test } ] } }
agents:
  - { id: ci, groups: [g], sandboxes: true }
  - { id: pinned, groups: [g], sandboxes: true, source_cidrs: [127.30.0.0/16] }
  - { id: plain, token: sha256:${'a'.repeat(64)}, groups: [g] }
`,
  'sandbox-auth.yaml',
).policy

function ctx(revoked: readonly string[] = [], keys = [KEY, OLD], known = true): SandboxAuth {
  return { keys, maxTtlMs: 24 * HOUR, isRevoked: (id) => revoked.includes(id), revocationsKnown: () => known }
}

const PROXY = { authority: '127.0.0.1:3128', warning: null }

function issued(agent = 'ci', ttlMs = 2 * HOUR, key = KEY) {
  const out = issueSandbox(POLICY, 24 * HOUR, key, { agent, ttlMs, labels: { task: 'T-1' } }, PROXY, NOW)
  if (!out.ok) throw new Error(out.message)
  return out.sandbox
}

t.test('an issued credential authenticates as its template, with the sandbox kept (never the token)', async (t) => {
  const s = issued()
  const id = authenticate(POLICY, basic(s.user, s.token), '127.0.0.1', ctx(), NOW)
  t.match(id, {
    kind: 'agent',
    agent: { id: 'ci' },
    credential: {
      kind: 'sandbox',
      id: s.id,
      labels: { task: 'T-1' },
      expiresAtMs: Date.parse(s.expires_at),
      keyId: KEY.id,
    },
  })
  t.notMatch(JSON.stringify(id), s.token.split('.')[2] as string)
  if (id.kind === 'agent') t.equal(limiterKey('ci', id.credential), `ci+${s.id}`, 'limits count per sandbox')
})

const cases: Array<
  [string, () => { user: string; token: string; at?: number; ctx?: SandboxAuth; src?: string }, string]
> = [
  ['an unknown agent', () => ({ user: `nobody+${issued().id}`, token: issued().token }), 'bad_credentials'],
  [
    'an agent that is not a template',
    () => ({ user: `plain+${issued().id}`, token: issued().token }),
    'not_a_sandbox_template',
  ],
  ['no key configured', () => ({ ...issued(), ctx: ctx([], []) }), 'no_signing_key'],
  ['a retired key', () => ({ ...issued('ci', HOUR, signingKey(Buffer.alloc(32, 3))) }), 'bad_signature'],
  ['expired', () => ({ ...issued('ci', HOUR), at: NOW + 2 * HOUR }), 'expired'],
  [
    'revoked',
    () => {
      const s = issued()
      return { ...s, ctx: ctx([s.id]) }
    },
    'revoked',
  ],
  [
    'revocations not read yet (Redis down since start)',
    () => ({ ...issued(), ctx: ctx([], [KEY, OLD], false) }),
    'revocations_unknown',
  ],
  [
    'another agent in the user',
    () => {
      const s = issued()
      return { user: `pinned+${s.id}`, token: s.token, src: '127.30.0.1' }
    },
    'wrong_agent',
  ],
  [
    'a template with source_cidrs, from elsewhere',
    () => ({ ...issued('pinned'), src: '127.0.0.1' }),
    'source_not_allowed',
  ],
  [
    'longer than max_sandbox_ttl (signed elsewhere)',
    () => {
      const iat = Math.floor(NOW / 1000)
      const id = ulid(iat * 1000)
      return {
        user: `ci+${id}`,
        token: encodeSandboxToken({ agent: 'ci', id, iat, exp: iat + 25 * 3600, labels: {} }, KEY),
      }
    },
    'ttl_exceeds_max',
  ],
]
for (const [name, make, detail] of cases)
  t.test(`${name}: denied_auth_invalid, ${detail}`, async (t) => {
    const c = make()
    const id = authenticate(POLICY, basic(c.user, c.token), c.src ?? '127.0.0.1', c.ctx ?? ctx(), c.at ?? NOW)
    t.match(id, {
      kind: 'denied',
      decision: { verdict: 'deny', reason: 'denied_auth_invalid', detail, explanation: /./ },
    })
  })

t.test('without a genuine credential the refusal is the same whatever agent the user names', async (t) => {
  const s = issued()
  const forged = `${s.token.slice(0, -2)}AA`
  for (const token of ['hunter2', forged]) {
    const answers = ['ci', 'plain', 'nobody'].map((agent) => {
      const id = authenticate(POLICY, basic(`${agent}+${s.id}`, token), '127.0.0.1', ctx(), NOW)
      return id.kind === 'denied' ? id.decision : null
    })
    t.same(answers[1], answers[0], `${token === forged ? 'forged' : 'junk'}: a non-template answers as a template`)
    t.same(answers[2], answers[0], `${token === forged ? 'forged' : 'junk'}: an unknown id answers as a template`)
  }
  const unknown = authenticate(POLICY, basic(`nobody+${s.id}`, 'hunter2'), '127.0.0.1', ctx(), NOW)
  t.equal(unknown.kind === 'denied' ? unknown.claimedAgent : 'x', null, 'an unknown id is not recorded as an agent')
  const known = authenticate(POLICY, basic(`plain+${s.id}`, 'hunter2'), '127.0.0.1', ctx(), NOW)
  t.equal(known.kind === 'denied' ? known.claimedAgent : 'x', 'plain', 'the record names an existing one')
})

t.test('a refused genuine credential names its sandbox; a forged one does not', async (t) => {
  const s = issued()
  t.match(authenticate(POLICY, basic(s.user, s.token), '127.0.0.1', ctx([s.id]), NOW), {
    claimedAgent: 'ci',
    claimedSandbox: { sandbox: s.id, labels: { task: 'T-1' } },
  })
  const forged = authenticate(POLICY, basic(s.user, `${s.token.slice(0, -2)}AA`), '127.0.0.1', ctx(), NOW)
  t.equal(forged.kind === 'denied' ? forged.claimedSandbox : 'x', undefined)
})

t.test(
  'an open connection: lapses on expiry, revocation and a retired key; a reload keeps it while a template',
  async (t) => {
    const s = issued('ci', HOUR, OLD)
    const id = authenticate(POLICY, basic(s.user, s.token), '127.0.0.1', ctx(), NOW)
    if (id.kind !== 'agent' || id.credential.kind !== 'sandbox') return t.fail('not accepted')
    const c = id.credential
    t.equal(sandboxLapse(c, ctx(), NOW), null)
    t.equal(sandboxLapse(c, ctx(), NOW + HOUR), 'expired')
    t.equal(sandboxLapse(c, ctx([s.id]), NOW), 'revoked')
    t.equal(sandboxLapse(c, ctx([], [KEY]), NOW), 'key_retired', 'rotation finished: the old key is gone')
    t.equal(
      sandboxLapse(c, { ...ctx(), maxTtlMs: HOUR / 2 }, NOW),
      'ttl_exceeds_max',
      'a reload that lowers max_sandbox_ttl below its lifetime',
    )
    t.equal(sandboxLapse(c, { ...ctx(), maxTtlMs: HOUR }, NOW), null, 'a lifetime of exactly the maximum is kept')
    t.ok(stillAuthenticates(POLICY, 'ci', c, '127.0.0.1'))
    const noLonger = parseConfigText(
      'groups: { g: { allow: [ { host: a.test } ] } }\nagents:\n  - { id: ci, groups: [g], source_cidrs: [10.0.0.0/8] }\n',
      'reloaded.yaml',
    ).policy
    t.notOk(stillAuthenticates(noLonger, 'ci', c, '127.0.0.1'), 'a reload that ends the template closes it')
  },
)

t.test('a template with source_cidrs is never identified by address alone', async (t) => {
  // Its sources narrow where its sandboxes' credentials count; a sandbox that drops a revoked one
  // must not go on as the template.
  const none = authenticate(POLICY, undefined, '127.30.0.9', ctx(), NOW)
  t.match(none, { kind: 'denied', decision: { reason: 'denied_auth_required', detail: 'no_credentials' } })
  const s = issued('pinned')
  t.match(authenticate(POLICY, basic(s.user, s.token), '127.30.0.9', ctx(), NOW), {
    kind: 'agent',
    agent: { id: 'pinned' },
    credential: { kind: 'sandbox', id: s.id },
  })
  t.match(authenticate(POLICY, basic(s.user, s.token), '127.30.0.9', ctx([s.id]), NOW), {
    kind: 'denied',
    decision: { detail: 'revoked' },
  })
  t.notOk(stillAuthenticates(POLICY, 'pinned', { kind: 'source' }, '127.30.0.9'), 'nor kept by a reload')
})
