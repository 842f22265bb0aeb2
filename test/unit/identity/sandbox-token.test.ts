import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { ulid } from 'ulid'
import {
  canonicalPayload,
  checkTimes,
  encodeSandboxToken,
  idTimeMs,
  labelProblem,
  parseSandboxUser,
  parseSigningKey,
  signingKey,
  verifySandboxToken,
  type SandboxClaims,
} from '../../../src/identity/sandbox-token.js'

const KEY = signingKey(Buffer.alloc(32, 7))
const OLD = signingKey(Buffer.alloc(32, 9))
const NOW = Date.UTC(2026, 10, 25, 10, 0, 0)
const IAT = Math.floor(NOW / 1000)
const HOUR = 3600_000

function claims(over: Partial<SandboxClaims> = {}): SandboxClaims {
  return { agent: 'ci', id: ulid(IAT * 1000), iat: IAT, exp: IAT + 7200, labels: { task: 'T-123' }, ...over }
}

/** Re-sign an arbitrary payload with KEY, as the codec would (to test what is refused after the MAC). */
function signRaw(payloadJson: string, key = KEY.key): string {
  const p = Buffer.from(payloadJson, 'utf8').toString('base64url')
  const mac = createHmac('sha256', key).update('portcullis-sandbox-v1\n').update(p).digest('base64url')
  return `pcs1.${p}.${mac}`
}

t.test('a token round-trips: same claims, and which key signed it', async (t) => {
  const c = claims()
  const r = verifySandboxToken(encodeSandboxToken(c, KEY), [KEY])
  t.matchOnly(r, { kind: 'ok', claims: c, keyId: KEY.id })
})

t.test('the canonical form: fixed key order, labels sorted by key, versioned', async (t) => {
  const c = claims({ labels: { z: '1', a: '2' } })
  t.equal(
    canonicalPayload(c),
    `{"v":1,"agent":"ci","id":"${c.id}","iat":${IAT},"exp":${IAT + 7200},"labels":{"a":"2","z":"1"}}`,
  )
  t.equal(encodeSandboxToken(c, KEY), encodeSandboxToken({ ...c, labels: { a: '2', z: '1' } }, KEY))
})

t.test('tampering', async (t) => {
  const token = encodeSandboxToken(claims(), KEY)
  const [prefix, payload, mac] = token.split('.') as [string, string, string]
  t.test('a payload changed by one character is a bad signature', async (t) => {
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), agent: 'admin' }),
    )
    t.matchOnly(verifySandboxToken(`${prefix}.${forged.toString('base64url')}.${mac}`, [KEY]), {
      kind: 'invalid',
      detail: 'bad_signature',
    })
  })
  t.test('a longer ttl written into the payload is a bad signature', async (t) => {
    const c = claims({ exp: IAT + 365 * 86400 })
    const p2 = Buffer.from(canonicalPayload(c)).toString('base64url')
    t.matchOnly(verifySandboxToken(`${prefix}.${p2}.${mac}`, [KEY]), { kind: 'invalid', detail: 'bad_signature' })
  })
  t.test('a flipped MAC bit is a bad signature', async (t) => {
    const bytes = Buffer.from(mac, 'base64url')
    bytes[0] = (bytes[0] as number) ^ 1
    t.matchOnly(verifySandboxToken(`${prefix}.${payload}.${bytes.toString('base64url')}`, [KEY]), {
      kind: 'invalid',
      detail: 'bad_signature',
    })
  })
  t.test('another key is a bad signature', async (t) => {
    t.matchOnly(verifySandboxToken(token, [signingKey(randomBytes(32))]), { kind: 'invalid', detail: 'bad_signature' })
  })
  t.test('no keys at all is a bad signature', async (t) => {
    t.matchOnly(verifySandboxToken(token, []), { kind: 'invalid', detail: 'bad_signature' })
  })
  for (const [name, bad] of [
    ['another prefix', token.replace(/^pcs1/, 'pcs2')],
    ['a missing part', `${prefix}.${payload}`],
    ['an extra part', `${token}.x`],
    ['base64 padding', `${token}=`],
    ['a short MAC', `${prefix}.${payload}.${mac.slice(0, 20)}`],
    ['standard base64 characters', `${prefix}.${payload}+.${mac}`],
    ['an empty string', ''],
  ] as const)
    t.test(`${name} is malformed`, async (t) => {
      t.matchOnly(verifySandboxToken(bad, [KEY]), { kind: 'invalid', detail: 'malformed_token' })
    })
})

t.test('a signed payload that is not canonical is refused (malformed_token)', async (t) => {
  const c = claims()
  const cases: Record<string, string> = {
    'keys in another order': JSON.stringify({
      agent: c.agent,
      v: 1,
      id: c.id,
      iat: c.iat,
      exp: c.exp,
      labels: c.labels,
    }),
    spaces: canonicalPayload(c).replace(/,/g, ', '),
    'a duplicate key': canonicalPayload(c).replace('{"v":1,', '{"v":1,"agent":"other",'),
    'labels not sorted': canonicalPayload({ ...c, labels: {} }).replace('"labels":{}', '"labels":{"z":"1","a":"2"}'),
    'an escaped character': canonicalPayload(c).replace('"ci"', '"\\u0063i"'),
    'another version': canonicalPayload(c).replace('"v":1', '"v":2'),
    'a fractional expiry': canonicalPayload(c).replace(`"exp":${c.exp}`, `"exp":${c.exp}.5`),
    'an id whose time is not the issue time': canonicalPayload({ ...c, id: ulid((IAT + 3600) * 1000) }),
    'an agent id with a plus': canonicalPayload({ ...c, agent: 'ci+x' }),
    'a label that is not a string': canonicalPayload(c).replace('"T-123"', '123'),
    'not JSON': 'nope',
  }
  for (const [name, json] of Object.entries(cases))
    t.test(name, async (t) => {
      t.matchOnly(verifySandboxToken(signRaw(json), [KEY]), { kind: 'invalid', detail: 'malformed_token' })
    })
  t.test('while the canonical one, signed the same way, is accepted', async (t) => {
    t.match(verifySandboxToken(signRaw(canonicalPayload(c)), [KEY]), { kind: 'ok' })
  })
})

t.test('rotation: the previous key still verifies, and says so', async (t) => {
  const c = claims()
  t.matchOnly(verifySandboxToken(encodeSandboxToken(c, OLD), [KEY, OLD]), { kind: 'ok', claims: c, keyId: OLD.id })
  t.matchOnly(verifySandboxToken(encodeSandboxToken(c, KEY), [KEY, OLD]), { kind: 'ok', claims: c, keyId: KEY.id })
  t.matchOnly(verifySandboxToken(encodeSandboxToken(c, OLD), [KEY]), { kind: 'invalid', detail: 'bad_signature' })
  t.not(KEY.id, OLD.id)
})

t.test('times', async (t) => {
  const c = claims()
  t.equal(checkTimes(c, NOW, 24 * HOUR), null, 'within its life')
  t.equal(checkTimes(c, (c.exp - 1) * 1000, 24 * HOUR), null, 'a second before expiry')
  t.equal(checkTimes(c, c.exp * 1000, 24 * HOUR), 'expired', 'at expiry')
  t.equal(checkTimes(c, NOW + 3 * HOUR, 24 * HOUR), 'expired', 'after expiry')
  t.equal(checkTimes(c, NOW - 30_000, 24 * HOUR), null, 'issued 30 s ahead of our clock: within the skew')
  t.equal(checkTimes(c, NOW - 5 * 60_000, 24 * HOUR), 'not_yet_valid', 'issued 5 min ahead')
  t.equal(checkTimes(c, NOW, HOUR), 'ttl_exceeds_max', 'a 2 h credential where the maximum is 1 h')
  t.equal(checkTimes(c, NOW, 2 * HOUR), null, 'exactly the maximum')
  t.equal(checkTimes({ ...c, exp: c.iat }, NOW - 1, 24 * HOUR), 'ttl_exceeds_max', 'no life at all')
})

t.test('the id carries the issue time', async (t) => {
  t.equal(Math.floor(idTimeMs(ulid(NOW)) / 1000), IAT)
})

t.test('labels', async (t) => {
  t.equal(labelProblem({ task: 'T-123', 'team.name': 'infra' }), null)
  t.match(labelProblem({ 'bad key': 'x' }), /label key/)
  t.match(labelProblem({ k: 'new\nline' }), /printable/)
  t.match(labelProblem(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))), /at most 16/)
  t.match(
    labelProblem(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v'.repeat(120)]))),
    /at most 1024/,
  )
})

t.test('sandbox users split at the first +', async (t) => {
  t.same(parseSandboxUser('ci+01JD0000000000000000000000'), { agent: 'ci', id: '01JD0000000000000000000000' })
  t.equal(parseSandboxUser('ci'), null)
  t.equal(parseSandboxUser('+x'), null)
})

t.test('signing keys from the environment', async (t) => {
  const raw = randomBytes(32)
  t.same((parseSigningKey(raw.toString('base64')) as { key: Buffer }).key, raw, 'standard base64')
  t.same((parseSigningKey(raw.toString('base64url')) as { key: Buffer }).key, raw, 'URL-safe base64')
  t.match(parseSigningKey(randomBytes(16).toString('base64')), { problem: /16 bytes/ })
  t.match(parseSigningKey('not base64!'), { problem: /not base64/ })
})
