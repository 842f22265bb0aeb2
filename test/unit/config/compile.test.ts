import { readFileSync } from 'node:fs'
import t from 'tap'
import { compileConfig } from '../../../src/config/compile.js'
import { createPlainSource } from '../../../src/config/issues.js'
import { parseConfigText } from '../../../src/config/load.js'
import { configSchema } from '../../../src/config/schema.js'
import { listRules } from '../../../src/policy/compiled.js'

const SPEC = parseConfigText(
  readFileSync(new URL('../../fixtures/configs/good-spec.yaml', import.meta.url), 'utf8'),
  'good-spec.yaml',
)
const agent = (id: string) => SPEC.policy.agents.get(id)

t.test('limits: top-level defaults, then groups, then the agent', async (t) => {
  t.same(agent('ci-42')?.limits, { requestsPerMinute: 600, concurrentConnections: 8, bytesPerDay: null })
  t.same(agent('legacy-runner')?.limits, { requestsPerMinute: 1200, concurrentConnections: 8, bytesPerDay: null })
  t.same(agent('releaser')?.limits, { requestsPerMinute: 1200, concurrentConnections: 64, bytesPerDay: null })
})

t.test('a later group overrides an earlier one', async (t) => {
  const text = `groups:
  a: { limits: { requests_per_minute: 10, concurrent_connections: 1 } }
  b: { limits: { requests_per_minute: 20 } }
agents:
  - { id: x, source_cidrs: [127.0.0.1/32], groups: [a, b] }
`
  t.same(parseConfigText(text, 't.yaml').policy.agents.get('x')?.limits, {
    requestsPerMinute: 20,
    concurrentConnections: 1,
    bytesPerDay: null,
  })
})

t.test('tokens are stored as their 32 sha256 bytes, whatever the hex case', async (t) => {
  t.equal(
    agent('ci-42')?.tokenSha256?.toString('hex'),
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  )
  t.equal(
    agent('releaser')?.tokenSha256?.toString('hex'),
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  )
  t.equal(agent('legacy-runner')?.tokenSha256, null)
})

t.test('agents with source_cidrs are listed in config order', async (t) => {
  t.same(
    SPEC.policy.sourceAgents.map((a) => a.id),
    ['legacy-runner'],
  )
  t.match(agent('legacy-runner')?.sourceCidrs, [{ text: '10.20.0.0/16', kind: 'ipv4', prefix: 16 }])
})

t.test('an agent inherits the policy mode unless it sets its own', async (t) => {
  t.equal(agent('ci-42')?.mode, 'enforce')
  t.equal(agent('legacy-runner')?.mode, 'audit')
})

t.test('resolve pins are normalised IP lists', async (t) => {
  t.same(SPEC.upstream.resolve.get('registry.internal'), ['10.0.0.5'])
  t.same(SPEC.upstream.resolve.get('multi.internal'), ['10.0.0.6', '::1'])
  t.match(SPEC.upstream.allowPrivate, [{ text: '10.0.0.0/24' }])
})

t.test('the runtime config is frozen', async (t) => {
  t.ok(Object.isFrozen(SPEC))
  t.ok(Object.isFrozen(SPEC.upstream))
  t.ok(Object.isFrozen(SPEC.policy))
  t.ok(Object.isFrozen(agent('ci-42')))
})

t.test('a preset expansion keeps the id of the entry that named it', async (t) => {
  const builders = SPEC.policy.groups?.get('builders')
  t.ok(builders)
  if (!builders) return
  const pypi = listRules(builders).filter((r) => r.id === 'builders.allow[1]')
  t.same(
    pypi.map((r) => r.host),
    [
      { kind: 'exact', host: 'pypi.org' },
      { kind: 'exact', host: 'files.pythonhosted.org' },
    ],
  )
  t.ok(listRules(builders).filter((r) => r.id === 'builders.allow[2]').length >= 5, 'github expands to several rules')
})

t.test('a user preset replaces the built-in of the same name', async (t) => {
  const text = `presets:
  npm: [{ host: npm.mirror.test }]
groups: { g: { allow: [{ preset: npm }] } }
agents: [{ id: x, source_cidrs: [127.0.0.1/32], groups: [g] }]
`
  const g = parseConfigText(text, 't.yaml').policy.groups?.get('g')
  t.same(g ? listRules(g).map((r) => r.host) : [], [{ kind: 'exact', host: 'npm.mirror.test' }])
})

t.test('an agent with a source and a token keeps both', async (t) => {
  const text = `agents:
  - id: both
    token: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    source_cidrs: ["::1"]
`
  const a = parseConfigText(text, 't.yaml').policy.agents.get('both')
  t.match(a, { sourceCidrs: [{ text: '::1/128', kind: 'ipv6' }] })
  t.ok(a?.tokenSha256)
})

t.test('compileConfig works on a config built in code', async (t) => {
  const raw = configSchema.parse({ agents: [{ id: 'x', source_cidrs: ['127.0.0.1'], allow: [{ host: 'a.test' }] }] })
  const c = compileConfig(raw, createPlainSource('<code>'))
  t.equal(c.file, '<code>')
  t.equal(c.policy.rules.get('x')?.[0]?.size, 1)
})

t.test('compile errors from code carry the plain source position', async (t) => {
  const raw = configSchema.parse({ agents: [{ id: 'x', source_cidrs: ['nope'] }] })
  try {
    compileConfig(raw, createPlainSource('<code>'))
    t.fail('accepted')
  } catch (err) {
    t.match(err, {
      code: 'PC_ERR_CONFIG_INVALID',
      issues: [{ file: '<code>', line: 1, col: 1, path: 'agents[0].source_cidrs[0]' }],
    })
  }
})
