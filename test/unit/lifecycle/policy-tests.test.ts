import { readFileSync } from 'node:fs'
import t from 'tap'
import { loadConfig, parseConfigText } from '../../../src/config/load.js'
import { parsePolicyTests, parseTestRequest, runPolicyTests } from '../../../src/lifecycle/policy-tests.js'
import { runTestsFile, vetPolicyTests } from '../../../src/runtime/policy-tests.js'

const TEXT = readFileSync(new URL('../../fixtures/lifecycle/suggest-config.yaml', import.meta.url), 'utf8')
const CONFIG = parseConfigText(TEXT, 'suggest-config.yaml')

const REQUESTS: ReadonlyArray<readonly [string, string, object | RegExp]> = [
  [
    'METHOD URL',
    'GET https://registry.npmjs.org/react?x=1',
    { method: 'GET', scheme: 'https', host: 'registry.npmjs.org', port: 443, path: '/react', query: 'x=1' },
  ],
  [
    'a port and a normalised path',
    'PUT http://Example.COM:8080/a/../b',
    { host: 'example.com', port: 8080, path: '/b' },
  ],
  ['CONNECT host:port', 'CONNECT pastebin.com:443', { method: 'CONNECT', host: 'pastebin.com', port: 443, path: null }],
  ['a lower-case method is refused', 'get https://x.example', /upper-case HTTP method/],
  ['a relative URL is refused', 'GET /react', /absolute http/],
  ['a missing method is refused', 'https://x.example/', /METHOD URL/],
  ['CONNECT without a port is refused', 'CONNECT x.example', /host:port/],
]

for (const [name, text, expected] of REQUESTS)
  t.test(`request: ${name}`, async (t) => {
    const got = parseTestRequest(text)
    if (expected instanceof RegExp) t.match(got, expected)
    else t.match(got, expected)
  })

t.test('tests pass, and each failure says what was decided instead', async (t) => {
  const parsed = parsePolicyTests(`# comment
- { agent: ci, request: "GET https://registry.npmjs.org/react", expect: allowed, rule: "builders.allow[0]" }
- agent: ci
  request: PUT https://registry.npmjs.org/react
  expect: allowed
- { agent: ci, request: "CONNECT uploads.example.com:443", expect: denied_by_rule, rule: "builders.deny[0]" }
- { agent: ci, request: "GET https://pkgs.example.net/x", expect: allowed, rule: "builders.allow[0]" }
- { name: metadata stays shut, agent: ci, request: "GET http://169.254.169.254/", expect: allowed }
- { agent: ghost, request: "GET https://pkgs.example.net/x", expect: allowed }
`)
  t.ok(parsed.ok)
  if (!parsed.ok) return
  t.same(
    parsed.tests.map((x) => x.line),
    [2, 3, 6, 7, 8, 9],
  )
  const run = runPolicyTests(CONFIG, parsed.tests)
  t.equal(run.passed, 2)
  t.same(
    run.failures.map((f) => [f.test.line, f.got.reason, f.got.rule]),
    [
      [3, 'denied_method', 'builders.allow[0]'],
      [7, 'allowed', 'builders.allow[3]'],
      [8, 'denied_no_rule', null],
      [9, 'denied_auth_invalid', null],
    ],
  )
  t.equal(
    run.failures[0]?.message,
    'ci PUT https://registry.npmjs.org/react: expected allowed, got denied_method (rule builders.allow[0])',
  )
  t.match(
    run.failures[1]?.message,
    /expected allowed by builders\.allow\[0\], got allowed \(rule builders\.allow\[3\]\)/,
  )
  t.match(run.failures[2]?.message, /^metadata stays shut: expected allowed, got denied_no_rule/)
  t.match(run.failures[3]?.message, /no agent 'ghost' in suggest-config\.yaml/)
})

t.test('a malformed tests file: each problem at its line and column', async (t) => {
  const bad = parsePolicyTests(`- { agent: ci, request: "GET https://x.example/", expect: maybe }
- { agent: ci, request: "FETCH", expect: allowed, extra: 1 }
- { agent: ci, request: "GET x", expect: allowed }
`)
  t.notOk(bad.ok)
  if (bad.ok) return
  t.match(bad.problems, [
    { line: 1, message: /^expect: must be 'allowed' or a reason code/ },
    { line: 2, message: /unknown key 'extra'/ },
    { line: 3, col: 25, message: /^request: 'x' is not an absolute/ },
  ])
  const unquoted = parsePolicyTests(
    '- { agent: ci, request: "GET https://x.example/", expect: allowed, rule: g.allow[0] }\n',
  )
  t.match(unquoted, { ok: false, problems: [{ line: 1, message: /quote rule ids inside/ }] })
  t.match(parsePolicyTests('agent: ci\n'), { ok: false, problems: [{ message: 'expected a list of tests' }] })
  t.match(parsePolicyTests(''), { ok: true, tests: [] })
  t.match(parsePolicyTests('tests:\n  - { agent: ci, request: "CONNECT a.example:443", expect: denied_no_rule }\n'), {
    ok: true,
    tests: [{ agent: 'ci' }],
  })
})

t.test('the tests file beside the config: absent is none; failing vetoes a reload', async (t) => {
  const dir = t.testdir({
    'p.yaml': TEXT,
    'p.tests.yaml': '- { agent: ci, request: "GET https://registry.npmjs.org/react", expect: denied_no_rule }\n',
    'q.yaml': TEXT,
    'r.yaml': `tests_file: ${JSON.stringify(`${t.testdirName}/missing.yaml`)}\n${TEXT}`,
    's.yaml': `tests_file: null\n${TEXT}`,
  })
  const failing = await loadConfig(`${dir}/p.yaml`)
  t.same(failing.testsFile, { path: `${dir}/p.tests.yaml`, explicit: false })
  t.equal(
    vetPolicyTests(failing),
    `policy test failed: ${dir}/p.tests.yaml:1: ci GET https://registry.npmjs.org/react: expected denied_no_rule, got allowed (rule builders.allow[0])`,
  )
  t.equal(vetPolicyTests(await loadConfig(`${dir}/q.yaml`)), null, 'no tests file beside it: nothing to run')
  t.match(vetPolicyTests(await loadConfig(`${dir}/r.yaml`)), /policy tests: cannot read .*missing\.yaml \(ENOENT\)/)
  t.same(runTestsFile(await loadConfig(`${dir}/s.yaml`)), { kind: 'none' })
  t.match(runTestsFile(failing, `${dir}/q.yaml`), { kind: 'invalid' })
})

t.test('the shipped default config passes its shipped tests', async (t) => {
  const config = await loadConfig(new URL('../../../config/portcullis.yaml', import.meta.url).pathname)
  const outcome = runTestsFile(config, new URL('../../../config/portcullis.tests.yaml', import.meta.url).pathname)
  t.match(outcome, { kind: 'ran', failures: [] })
  t.ok(outcome.kind === 'ran' && outcome.passed >= 10)
})

t.test('GitHub API writes the route refuses are refused offline as the proxy refuses them (SPEC §8)', async (t) => {
  const WRITE = parseConfigText(
    TEXT.replace('access: read }', 'access: write, api: { pulls: create }, push: { branches: ["agent/{agent}/**"] } }'),
    'write.yaml',
  )
  const parsed = parsePolicyTests(`
- { agent: ci, request: "PUT https://api.github.com/repos/acme/widgets/pulls/1/merge", expect: denied_repo_write }
- { agent: ci, request: "DELETE https://api.github.com/repos/acme/widgets", expect: denied_repo_write }
- { agent: ci, request: "PUT https://api.github.com/repos/acme/widgets/branches/main/protection", expect: denied_repo_write }
- { agent: ci, request: "POST https://api.github.com/repos/acme/widgets/issues", expect: denied_repo_write }
- { agent: ci, request: "DELETE https://api.github.com/repos/acme/widgets/git/refs/heads/main", expect: denied_repo_write }
- { agent: ci, request: "POST https://api.github.com/repos/acme/widgets/pulls?base=main", expect: denied_repo_write }
- { agent: ci, request: "POST https://api.github.com/repos/acme/widgets/pulls", expect: allowed }
- { agent: ci, request: "GET https://api.github.com/repos/acme/widgets/pulls/1", expect: allowed }
- { agent: ci, request: "PUT https://api.github.com/repos/acme/widgets/pulls/1/merge", expect: allowed }
`)
  t.ok(parsed.ok)
  if (!parsed.ok) return
  const run = runPolicyTests(WRITE, parsed.tests)
  t.equal(run.passed, 8, 'merge, repo delete, branch protection, an ungranted issue, a ref delete, a query: refused')
  t.same(
    run.failures.map((f) => [f.test.line, f.got.reason, f.got.detail]),
    [[10, 'denied_repo_write', 'merge']],
    'a test that expects a merge allowed fails, saying why',
  )
  const read = runPolicyTests(CONFIG, parsed.tests.slice(0, 1))
  t.match(read.failures, [{ got: { verdict: 'deny', reason: 'denied_method' } }], 'read access: no write method at all')
})
