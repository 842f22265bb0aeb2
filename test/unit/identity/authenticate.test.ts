import { createHash } from 'node:crypto'
import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { authenticate, stillAuthenticates } from '../../../src/identity/authenticate.js'

const hash = (token: string): string => `sha256:${createHash('sha256').update(token).digest('hex')}`
const basic = (user: string, token: string): string => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`
const policyWith = (ciToken: string, runnerCidr = '127.20.0.0/16'): ReturnType<typeof parseConfigText>['policy'] =>
  parseConfigText(
    `groups: { g: { allow: [ { host: a.test } ] } }
agents:
  - { id: ci, token: ${hash(ciToken)}, groups: [g] }
  - { id: pinned, token: ${hash('p')}, source_cidrs: [127.30.0.0/16], groups: [g] }
  - { id: runner, source_cidrs: [${runnerCidr}], groups: [g] }
`,
    'auth.yaml',
  ).policy

const POLICY = policyWith('t1')

t.test('a right token authenticates and carries its sha256, never the token', async (t) => {
  const id = authenticate(POLICY, basic('ci', 't1'), '127.0.0.1')
  t.match(id, { kind: 'agent', agent: { id: 'ci' }, credential: { kind: 'token' } })
  if (id.kind === 'agent' && id.credential.kind === 'token')
    t.equal(id.credential.sha256.toString('hex'), hash('t1').slice(7))
})

t.test('a wrong token is denied_auth_invalid with the claimed id', async (t) => {
  t.match(authenticate(POLICY, basic('ci', 'nope'), '127.0.0.1'), {
    kind: 'denied',
    decision: { reason: 'denied_auth_invalid' },
    claimedAgent: 'ci',
  })
})

t.test('a token agent with source_cidrs accepts it only from them', async (t) => {
  t.match(authenticate(POLICY, basic('pinned', 'p'), '127.30.1.1'), { kind: 'agent', agent: { id: 'pinned' } })
  t.match(authenticate(POLICY, basic('pinned', 'p'), '127.31.1.1'), {
    kind: 'denied',
    decision: { detail: 'source_not_allowed' },
  })
})

t.test('no header: the first source agent holding the address', async (t) => {
  t.match(authenticate(POLICY, undefined, '127.20.3.4'), {
    kind: 'agent',
    agent: { id: 'runner' },
    credential: { kind: 'source' },
  })
  t.match(authenticate(POLICY, undefined, '127.99.0.1'), {
    kind: 'denied',
    decision: { reason: 'denied_auth_required' },
  })
})

t.test('stillAuthenticates: the same token under an unchanged agent', async (t) => {
  const id = authenticate(POLICY, basic('ci', 't1'), '127.0.0.1')
  if (id.kind !== 'agent') return t.fail('expected an agent')
  t.equal(stillAuthenticates(policyWith('t1'), 'ci', id.credential, '127.0.0.1'), true)
  t.equal(stillAuthenticates(policyWith('t2'), 'ci', id.credential, '127.0.0.1'), false, 'a rotated token')
  t.equal(
    stillAuthenticates(policyWith('t1'), 'gone', id.credential, '127.0.0.1'),
    false,
    'an agent that no longer exists',
  )
})

t.test('stillAuthenticates: a source agent whose source_cidrs no longer hold the address', async (t) => {
  const id = authenticate(POLICY, undefined, '127.20.3.4')
  if (id.kind !== 'agent') return t.fail('expected an agent')
  t.equal(stillAuthenticates(policyWith('t1'), 'runner', id.credential, '127.20.3.4'), true)
  t.equal(stillAuthenticates(policyWith('t1', '127.21.0.0/16'), 'runner', id.credential, '127.20.3.4'), false)
})
