import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import { groupYaml, TOKEN, upstreamYaml, writeConfig } from '../helpers/config.js'
import { runPortcullis } from '../helpers/spawn-portcullis.js'

// SPEC §10 policy tests: a reload whose tests fail is refused like an invalid edit and /healthz names
// the test; fixing the tests file (or the config) lets the next reload through; `start` refuses a
// policy whose tests fail; `check` prints each failure (exit 1).

function policy(port: number, hosts: readonly string[]): string {
  return `${upstreamYaml([port])}\n${groupYaml(hosts.map((h) => `host: ${h}`))}`
}

function tests(port: number, other: string): string {
  return `# what must hold
- { agent: ci, request: "GET http://origin.test:${port}/", expect: allowed, rule: "g.allow[0]" }
- { name: other.test stays shut, agent: ci, request: "GET http://other.test:${port}/", expect: ${other} }
`
}

t.test('a reload whose policy tests fail is refused; /healthz names the test', async (t) => {
  const origin = await startHttpOrigin(t)
  const p = origin.port
  const pc = await startPortcullis(
    t,
    policy(p, ['origin.test']),
    { 'portcullis.tests.yaml': tests(p, 'denied_no_rule') },
    { watch: true },
  )
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const health = async (): Promise<{ generation: number; config_error: string | null }> =>
    (await fetch(`${pc.adminUrl}/healthz`)).json() as Promise<{ generation: number; config_error: string | null }>
  const testsFile = join(pc.dir, 'portcullis.tests.yaml')
  const writeTests = (text: string): void => {
    writeFileSync(`${testsFile}.tmp`, text)
    renameSync(`${testsFile}.tmp`, testsFile)
  }

  t.equal((await health()).config_error, null, 'the tests pass at start')
  pc.rewriteConfig(policy(p, ['origin.test', 'other.test']))
  t.ok(await until(async () => (await health()).config_error !== null), 'the edit is refused')
  const h = await health()
  t.equal(h.generation, 1, 'the last good policy stays in force')
  t.equal(
    h.config_error,
    `policy test failed: ${testsFile}:3: other.test stays shut: expected denied_no_rule, got allowed (rule g.allow[1])`,
  )
  t.ok(pc.logLines().some((l) => l.includes('"code":"PC_CONFIG_REFUSED"') && l.includes('other.test stays shut')))
  const denied = await curl([...proxy, `http://other.test:${p}/`])
  t.equal(denied.status, 403, 'other.test is still denied')
  t.equal(denied.headers['x-portcullis-decision'], 'denied_no_rule')
  t.notOk(
    origin.seen.some((s) => s.headers.host === `other.test:${p}`),
    'the origin saw nothing for other.test',
  )

  writeTests(tests(p, 'allowed'))
  t.ok(await until(async () => (await health()).generation === 2), 'editing the tests file reloads; now they pass')
  t.equal((await health()).config_error, null)
  t.equal((await curl([...proxy, `http://other.test:${p}/`])).status, 200, 'the new rule applies')
  const rec = await pc.waitForRecord((r) => r.event === 'decision' && r.host === 'other.test' && r.decision === 'allow')
  t.match(rec, { rule: 'g.allow[1]', reason: 'allowed' })

  writeTests('- { agent: ci, request: "FETCH it", expect: allowed }\n')
  const refused = await adminCall<{ ok: boolean; error: string; generation: number }>(
    pc.adminUrl,
    'POST',
    '/api/reload',
  )
  t.equal(refused.status, 422, 'a tests file that cannot be read as tests refuses the reload too')
  t.match(refused.body, {
    ok: false,
    generation: 2,
    error: /^policy tests file invalid: .*portcullis\.tests\.yaml:1: request: 'it' is not an absolute/,
  })
  t.equal((await curl([...proxy, `http://other.test:${p}/`])).status, 200, 'the policy in force is unchanged')
})

t.test('a tests file a reload names is watched from then on', async (t) => {
  const origin = await startHttpOrigin(t)
  const p = origin.port
  const pc = await startPortcullis(t, `tests_file: null\n${policy(p, ['origin.test'])}`, {}, { watch: true })
  const health = async (): Promise<{ generation: number; config_error: string | null }> =>
    (await fetch(`${pc.adminUrl}/healthz`)).json() as Promise<{ generation: number; config_error: string | null }>
  const testsFile = join(pc.dir, 'later.tests.yaml')
  writeFileSync(testsFile, tests(p, 'denied_no_rule'))
  pc.rewriteConfig(`tests_file: ${JSON.stringify(testsFile)}\n${policy(p, ['origin.test'])}`)
  t.ok(await until(async () => (await health()).generation === 2), 'the config naming it reloads; its tests pass')
  writeFileSync(`${testsFile}.tmp`, tests(p, 'allowed'))
  renameSync(`${testsFile}.tmp`, testsFile)
  t.ok(
    await until(async () => (await health()).config_error !== null, 3000),
    'an edit of that tests file alone reloads, and its failing test refuses it',
  )
  t.match((await health()).config_error, /other\.test stays shut: expected allowed, got denied_no_rule/)
})

t.test('start refuses a policy whose tests fail; check prints each failure', async (t) => {
  const dir = t.testdir()
  const file = writeConfig(dir, policy(9, ['origin.test']))
  writeFileSync(join(dir, 'portcullis.tests.yaml'), tests(9, 'allowed'))
  const cli = (args: readonly string[]): ReturnType<typeof runPortcullis> => runPortcullis(args, { cwd: dir })

  const start = await cli(['start', '--config', file])
  t.equal(start.code, 2, 'start refused')
  t.match(
    start.stderr,
    /policy test failed: .*portcullis\.tests\.yaml:3: other\.test stays shut: expected allowed, got denied_no_rule/,
  )
  t.match(start.stderr, /\(PC_ERR_POLICY_TESTS\)/)

  const check = await cli(['check', '--config', file])
  t.equal(check.code, 1)
  t.match(
    check.stdout,
    /FAIL .*portcullis\.tests\.yaml:3: other\.test stays shut: expected allowed, got denied_no_rule \(rule -\)\npolicy tests \(.*\): 1 passed, 1 failed\n$/,
  )

  writeFileSync(join(dir, 'other.tests.yaml'), tests(9, 'denied_no_rule'))
  const separate = await cli(['check', '--config', file, '--tests', join(dir, 'other.tests.yaml')])
  t.equal(separate.code, 0, separate.stderr)
  t.match(separate.stdout, /policy tests \(.*other\.tests\.yaml\): 2 passed\n$/)

  const missing = await cli(['check', '--config', file, '--tests', join(dir, 'nope.yaml')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /cannot read .*nope\.yaml \(ENOENT\)/)
})

t.test('the shipped config and its tests file pass check', async (t) => {
  const r = await runPortcullis(['check', '--config', 'config/portcullis.yaml'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /policy tests \(config\/portcullis\.tests\.yaml\): \d+ passed\n$/)
  t.match(r.stdout, /user presets \(presets:\):\n {2}github-read: github\.com \[GET, HEAD\]/)
})
