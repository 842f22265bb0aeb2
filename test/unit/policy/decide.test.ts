import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { effectiveMode, type CompiledPolicy } from '../../../src/policy/compiled.js'
import { decideConnect, decideRequest, denyByAddress, matchRequest } from '../../../src/policy/decide.js'
import { applyMode } from '../../../src/policy/mode.js'
import type { RequestFacts } from '../../../src/policy/types.js'

const FIXTURE = new URL('../../fixtures/configs/decide-scenarios.yaml', import.meta.url)
const TEXT = readFileSync(FIXTURE, 'utf8')

function policyWith(intercept: 'auto' | 'never' | 'always'): CompiledPolicy {
  return parseConfigText(TEXT.replace('intercept: auto', `intercept: ${intercept}`), 'decide-scenarios.yaml').policy
}
const POLICY = policyWith('auto')

/** `GET https://host:port/path?query` → facts, without going through net/ (the URL is already normal). */
function req(agent: string, method: string, url: string): RequestFacts {
  const u = new URL(url)
  const scheme = u.protocol === 'https:' ? 'https' : 'http'
  const port = u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port)
  return { agent, method, scheme, host: u.hostname, port, path: u.pathname, query: u.search.slice(1) }
}

type Expect = { verdict: 'allow' | 'deny'; reason: string; ruleId: string | null }
const allow = (ruleId: string): Expect => ({ verdict: 'allow', reason: 'allowed', ruleId })
const deny = (reason: string, ruleId: string | null): Expect => ({ verdict: 'deny', reason, ruleId })

const REQUESTS: ReadonlyArray<readonly [string, string, string, string, Expect]> = [
  // [behaviour, agent, method, url, expected]
  ['a preset allows its host for GET', 'ci-42', 'GET', 'https://registry.npmjs.org/react', allow('builders.allow[0]')],
  [
    'a read-only preset denies PUT with denied_method',
    'ci-42',
    'PUT',
    'https://registry.npmjs.org/react',
    deny('denied_method', 'builders.allow[0]'),
  ],
  [
    'a port outside upstream.ports is denied_port',
    'ci-42',
    'GET',
    'https://registry.npmjs.org:8443/react',
    deny('denied_port', 'builders.allow[0]'),
  ],
  [
    'an agent-level deny beats a group allow',
    'ci-42',
    'DELETE',
    'https://registry.npmjs.org/react',
    deny('denied_by_rule', 'agents.ci-42.deny[0]'),
  ],
  [
    'deny beats allow for a wildcard-allowed host',
    'ci-42',
    'GET',
    'https://uploads.example.com/',
    deny('denied_by_rule', 'builders.deny[0]'),
  ],
  ['`*.example.com` matches a subdomain', 'ci-42', 'GET', 'https://www.example.com/', allow('builders.allow[3]')],
  ['`*.example.com` matches any depth', 'ci-42', 'GET', 'https://a.b.c.example.com/', allow('builders.allow[3]')],
  ['`*.example.com` does not match the apex', 'ci-42', 'GET', 'https://example.com/', deny('denied_no_rule', null)],
  [
    'a rule port list replaces the default ports',
    'ci-42',
    'GET',
    'http://www.example.com/',
    deny('denied_port', 'builders.allow[3]'),
  ],
  [
    'github read allows info/refs for upload-pack',
    'ci-42',
    'GET',
    'https://github.com/acme/widgets.git/info/refs?service=git-upload-pack',
    allow('builders.allow[1]'),
  ],
  [
    'github read allows info/refs without .git',
    'ci-42',
    'GET',
    'https://github.com/acme/widgets/info/refs?service=git-upload-pack',
    allow('builders.allow[1]'),
  ],
  [
    'github read allows the upload-pack POST',
    'ci-42',
    'POST',
    'https://github.com/acme/widgets.git/git-upload-pack',
    allow('builders.allow[1]'),
  ],
  [
    'github read denies receive-pack discovery: push needs access: write',
    'ci-42',
    'GET',
    'https://github.com/acme/widgets.git/info/refs?service=git-receive-pack',
    deny('denied_repo_write', 'builders.allow[1]'),
  ],
  [
    'github read denies a push: push needs access: write',
    'ci-42',
    'POST',
    'https://github.com/acme/widgets.git/git-receive-pack',
    deny('denied_repo_write', 'builders.allow[1]'),
  ],
  [
    'a repo glob matches a matching repo',
    'ci-42',
    'GET',
    'https://github.com/acme/lib-core.git/info/refs?service=git-upload-pack',
    allow('builders.allow[1]'),
  ],
  [
    'a repo outside the list is denied_path',
    'ci-42',
    'GET',
    'https://github.com/acme/other.git/info/refs?service=git-upload-pack',
    deny('denied_path', 'builders.allow[1]'),
  ],
  [
    'github read allows archives',
    'ci-42',
    'GET',
    'https://github.com/acme/widgets/archive/refs/heads/main.tar.gz',
    allow('builders.allow[1]'),
  ],
  [
    'github read allows codeload',
    'ci-42',
    'GET',
    'https://codeload.github.com/acme/widgets/tar.gz/main',
    allow('builders.allow[1]'),
  ],
  [
    'github read allows raw files',
    'ci-42',
    'GET',
    'https://raw.githubusercontent.com/acme/widgets/main/README.md',
    allow('builders.allow[1]'),
  ],
  [
    'github read allows API GET of the repo',
    'ci-42',
    'GET',
    'https://api.github.com/repos/acme/widgets',
    allow('builders.allow[1]'),
  ],
  [
    'a path rule allows with `**`',
    'ci-42',
    'GET',
    'https://api.github.com/repos/acme/anything/pulls',
    allow('builders.allow[2]'),
  ],
  [
    'github read denies API writes (earliest rule reported)',
    'ci-42',
    'POST',
    'https://api.github.com/repos/acme/widgets/issues',
    deny('denied_method', 'builders.allow[1]'),
  ],
  [
    'github write allows a push',
    'releaser',
    'POST',
    'https://github.com/acme/widgets.git/git-receive-pack',
    allow('pushers.allow[0]'),
  ],
  [
    'github write allows receive-pack discovery',
    'releaser',
    'GET',
    'https://github.com/acme/widgets/info/refs?service=git-receive-pack',
    allow('pushers.allow[0]'),
  ],
  [
    'github write allows API writes',
    'releaser',
    'POST',
    'https://api.github.com/repos/acme/widgets/issues',
    allow('pushers.allow[0]'),
  ],
  [
    'git on a custom host allows a push',
    'releaser',
    'POST',
    'https://git.corp.test/team/app.git/git-receive-pack',
    allow('pushers.allow[1]'),
  ],
  [
    'git on a custom host has no archive paths',
    'releaser',
    'GET',
    'https://git.corp.test/team/app/archive/main.zip',
    deny('denied_path', 'pushers.allow[1]'),
  ],
  ['`*` matches within one segment', 'ci-42', 'GET', 'https://files.test/pub/tool/latest', allow('builders.allow[5]')],
  [
    '`*` does not cross segments',
    'ci-42',
    'GET',
    'https://files.test/pub/a/b/latest',
    deny('denied_path', 'builders.allow[5]'),
  ],
  ['`**` crosses segments', 'ci-42', 'GET', 'https://files.test/dl/a/b/c.tgz', allow('builders.allow[5]')],
  [
    'a user preset keeps the id of the entry that named it',
    'ci-42',
    'GET',
    'https://artifacts.corp.test/x',
    allow('builders.allow[6]'),
  ],
  [
    'a user preset restricts methods',
    'ci-42',
    'PUT',
    'https://artifacts.corp.test/x',
    deny('denied_method', 'builders.allow[6]'),
  ],
  ['an agent-level allow has an agent rule id', 'ci-42', 'GET', 'https://own.test/', allow('agents.ci-42.allow[0]')],
  [
    'a deny rule with paths denies only those paths',
    'ci-42',
    'GET',
    'https://mixed.test/admin/users',
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  [
    'a deny rule’s `/**` covers the bare directory',
    'ci-42',
    'GET',
    'https://mixed.test/admin',
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  [
    'a deny rule’s path matches in any case (a case-insensitive origin serves it)',
    'ci-42',
    'GET',
    'https://mixed.test/ADMIN/Users',
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  [
    'a deny rule’s bare prefix is the directory, not a longer name',
    'ci-42',
    'GET',
    'https://mixed.test/administrators',
    allow('builders.allow[11]'),
  ],
  [
    'a deny rule with paths leaves other paths allowed',
    'ci-42',
    'GET',
    'https://mixed.test/public',
    allow('builders.allow[11]'),
  ],
  ['a CIDR rule allows an address inside it', 'ci-42', 'GET', 'http://10.1.2.3:8080/', allow('builders.allow[12]')],
  ['a CIDR rule checks ports', 'ci-42', 'GET', 'http://10.1.2.3/', deny('denied_port', 'builders.allow[12]')],
  ['an address outside every CIDR has no rule', 'ci-42', 'GET', 'http://11.0.0.1:8080/', deny('denied_no_rule', null)],
  [
    'an encoded slash cannot climb out of an allowed path',
    'ci-42',
    'GET',
    'https://files.test/dl/..%2Fetc/passwd',
    deny('denied_path', 'builders.allow[5]'),
  ],
  [
    'an encoded backslash cannot climb out of an allowed path',
    'ci-42',
    'GET',
    'https://files.test/dl/..%5Cetc',
    deny('denied_path', 'builders.allow[5]'),
  ],
  [
    'an encoded slash cannot step around a deny rule',
    'ci-42',
    'GET',
    'https://mixed.test/admin%2Fusers',
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  [
    'a ;param cannot step around a deny rule',
    'ci-42',
    'GET',
    'https://mixed.test/admin;x/users',
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  [
    'an encoded slash allowed under both readings passes',
    'ci-42',
    'GET',
    'https://files.test/dl/a%2Fb.tgz',
    allow('builders.allow[5]'),
  ],
  [
    'a reading that is malformed once decoded is denied_path',
    'ci-42',
    'GET',
    'https://files.test/dl/a%2F..;x',
    deny('denied_path', null),
  ],
  ['a host without rules is denied_no_rule', 'ci-42', 'GET', 'https://evil.test/', deny('denied_no_rule', null)],
  [
    'an agent only gets its own groups',
    'releaser',
    'GET',
    'https://registry.npmjs.org/react',
    deny('denied_no_rule', null),
  ],
  [
    'an unknown agent fails closed',
    'ghost',
    'GET',
    'https://registry.npmjs.org/react',
    deny('denied_internal_error', null),
  ],
]

for (const [behaviour, agent, method, url, expected] of REQUESTS) {
  t.test(behaviour, async (t) => {
    t.match(decideRequest(POLICY, req(agent, method, url)), expected)
  })
}

type ConnectExpect = Expect & { via?: 'tunnel' | 'intercept' }
const tunnel = (ruleId: string): ConnectExpect => ({ ...allow(ruleId), via: 'tunnel' })
const intercept = (ruleId: string): ConnectExpect => ({ ...allow(ruleId), via: 'intercept' })

const CONNECTS: ReadonlyArray<readonly [string, 'auto' | 'never' | 'always', string, number, ConnectExpect]> = [
  // [behaviour, tls.intercept, host, port, expected]
  ['a host-level rule tunnels', 'auto', 'docs.test', 443, tunnel('builders.allow[4]')],
  ['a rule with methods intercepts', 'auto', 'registry.npmjs.org', 443, intercept('builders.allow[0]')],
  ['a repo rule intercepts', 'auto', 'github.com', 443, intercept('builders.allow[1]')],
  ['inject_headers intercepts', 'auto', 'tokens.test', 443, intercept('builders.allow[9]')],
  ['inspect_body intercepts', 'auto', 'scanned.test', 443, intercept('builders.allow[10]')],
  ['a deny rule with paths forces interception', 'auto', 'mixed.test', 443, intercept('builders.allow[11]')],
  [
    'a host-level deny denies the CONNECT',
    'auto',
    'uploads.example.com',
    443,
    deny('denied_by_rule', 'builders.deny[0]'),
  ],
  ['a wildcard host-level rule tunnels', 'auto', 'www.example.com', 443, tunnel('builders.allow[3]')],
  [
    'a CONNECT to a port the rule lacks is denied_port',
    'auto',
    'www.example.com',
    8443,
    deny('denied_port', 'builders.allow[3]'),
  ],
  ['a CONNECT to an unknown host is denied_no_rule', 'auto', 'evil.test', 443, deny('denied_no_rule', null)],
  ['a CIDR rule tunnels', 'auto', '10.9.8.7', 8080, tunnel('builders.allow[12]')],
  ['`intercept: never` on a host-level rule tunnels', 'auto', 'pinned.test', 443, tunnel('builders.allow[7]')],
  [
    '`intercept: never` on a path rule fails closed',
    'auto',
    'secret.test',
    443,
    deny('denied_path', 'builders.allow[8]'),
  ],
  ['tls.intercept never still tunnels host-level rules', 'never', 'docs.test', 443, tunnel('builders.allow[4]')],
  [
    'tls.intercept never denies a methods rule with denied_method',
    'never',
    'artifacts.corp.test',
    443,
    deny('denied_method', 'builders.allow[6]'),
  ],
  [
    // The npm preset's advisory rule names paths: the most specific failure is the path.
    'tls.intercept never denies the npm preset with denied_path',
    'never',
    'registry.npmjs.org',
    443,
    deny('denied_path', 'builders.allow[0]'),
  ],
  [
    'tls.intercept never denies a paths rule with denied_path',
    'never',
    'files.test',
    443,
    deny('denied_path', 'builders.allow[5]'),
  ],
  [
    'tls.intercept never fails closed on inject_headers',
    'never',
    'tokens.test',
    443,
    deny('denied_internal_error', 'builders.allow[9]'),
  ],
  [
    'tls.intercept never cannot enforce a deny with paths',
    'never',
    'mixed.test',
    443,
    deny('denied_by_rule', 'builders.deny[1]'),
  ],
  ['tls.intercept always intercepts host-level rules', 'always', 'docs.test', 443, intercept('builders.allow[4]')],
  ['tls.intercept always respects `intercept: never`', 'always', 'pinned.test', 443, tunnel('builders.allow[7]')],
  [
    'tls.intercept always still fails closed on a never path rule',
    'always',
    'secret.test',
    443,
    deny('denied_path', 'builders.allow[8]'),
  ],
]

const BY_MODE = { auto: POLICY, never: policyWith('never'), always: policyWith('always') }
for (const [behaviour, mode, host, port, expected] of CONNECTS) {
  t.test(behaviour, async (t) => {
    t.match(decideConnect(BY_MODE[mode], { agent: 'ci-42', host, port }), expected)
  })
}

t.test('an unknown agent fails closed on CONNECT', async (t) => {
  t.matchOnly(decideConnect(POLICY, { agent: 'ghost', host: 'docs.test', port: 443 }), {
    verdict: 'deny',
    reason: 'denied_internal_error',
    ruleId: null,
    detail: 'unknown_agent',
  })
})

t.test('matchRequest returns the allowing rule with its inject_headers', async (t) => {
  const m = matchRequest(POLICY, req('ci-42', 'GET', 'https://tokens.test/x'))
  t.match(m.decision, allow('builders.allow[9]'))
  t.match(m.rule?.injectHeaders, [{ name: 'Authorization', env: 'TOKENS_TEST', format: 'Bearer {}' }])
})

t.test('audit mode passes a denial and marks it would_deny', async (t) => {
  const d = decideRequest(POLICY, req('auditor', 'GET', 'https://evil.test/'))
  t.match(d, deny('denied_no_rule', null))
  t.equal(effectiveMode(POLICY, 'auditor'), 'audit')
  t.same(applyMode(d, effectiveMode(POLICY, 'auditor')), { pass: true, wouldDeny: true })
})

t.test('enforce mode blocks a denial', async (t) => {
  const d = decideRequest(POLICY, req('ci-42', 'GET', 'https://evil.test/'))
  t.same(applyMode(d, effectiveMode(POLICY, 'ci-42')), { pass: false, wouldDeny: false })
})

t.test('an allow passes in either mode', async (t) => {
  const d = decideRequest(POLICY, req('auditor', 'GET', 'https://docs.test/'))
  t.same(applyMode(d, 'audit'), { pass: true, wouldDeny: false })
  t.same(applyMode(d, 'enforce'), { pass: true, wouldDeny: false })
})

t.test('an unknown agent has the policy mode', async (t) => {
  t.equal(effectiveMode(POLICY, 'ghost'), 'enforce')
})

t.test('every matching allow rule asks for its handling, not only the one that allowed', async (t) => {
  const policy = parseConfigText(
    `groups:
  broad: { allow: [{ host: "*.test" }] }
  careful:
    allow:
      - { host: a.test, inspect_body: true, inject_headers: { X-Key: { env: K1 } } }
      - { host: a.test, paths: ["/up/**"], inject_headers: { X-Key: { env: K2 }, X-Other: { env: K3 } } }
agents:
  - { id: ci, source_cidrs: [10.0.0.0/8], groups: [broad, careful] }
`,
    'inline.yaml',
  ).policy
  const m = matchRequest(policy, req('ci', 'POST', 'https://a.test/up/x'))
  t.match(m.decision, allow('broad.allow[0]'), 'the earliest rule allows')
  t.match(m.handling, {
    inspectBody: true,
    injectHeaders: [
      { name: 'X-Key', env: 'K1' },
      { name: 'X-Other', env: 'K3' },
    ],
    ruleId: 'careful.allow[0]',
  })
  t.match(matchRequest(policy, req('ci', 'GET', 'https://a.test/other')).handling.injectHeaders, [{ env: 'K1' }])
  t.match(matchRequest(policy, req('ci', 'GET', 'https://b.test/up/x')).handling, {
    inspectBody: false,
    injectHeaders: [],
  })
})

t.test('a path longer than the matchers take is denied_path (path_too_long) before any rule', async (t) => {
  const d = decideRequest(POLICY, req('ci-42', 'GET', `https://tokens.test/${'a'.repeat(9000)}`))
  t.match(d, { verdict: 'deny', reason: 'denied_path', ruleId: null, detail: 'path_too_long' })
})

t.test('a push to a repo opened read-only is denied_repo_write read_only, whatever other repo rules say', async (t) => {
  const policy = parseConfigText(
    `groups:
  g:
    allow:
      - github: { repos: [acme/widgets], access: write }
      - github: { repos: [acme/other], access: read }
agents:
  - { id: ci, source_cidrs: [127.0.0.1/32], groups: [g] }
`,
    'read-only.yaml',
  ).policy
  for (const [method, url] of [
    ['POST', 'https://github.com/acme/other.git/git-receive-pack'],
    ['GET', 'https://github.com/acme/other.git/info/refs?service=git-receive-pack'],
    ['GET', 'https://github.com/acme/other/info/refs?service=git-receive-pack'],
  ] as const)
    t.match(
      decideRequest(policy, req('ci', method, url)),
      { verdict: 'deny', reason: 'denied_repo_write', detail: 'read_only', ruleId: 'g.allow[1]' },
      `${method} ${url}`,
    )
  t.match(
    decideRequest(policy, req('ci', 'POST', 'https://github.com/acme/third.git/git-receive-pack')),
    { verdict: 'deny', reason: 'denied_path' },
    'a repo no rule opens is a path refusal, not read_only',
  )
  t.match(decideRequest(policy, req('ci', 'POST', 'https://github.com/acme/widgets.git/git-receive-pack')), {
    verdict: 'allow',
  })
})

t.test('repo rules compare owner and repo case-insensitively, as forges route them', async (t) => {
  const policy = parseConfigText(
    `groups:
  g:
    allow:
      - github: { repos: [Acme/Widgets], preset: github-agent }
      - github: { repos: ["acme/*"], access: write, push: { branches: ["**"], force: true } }
      - git: { host: git.test, repos: [team/App], access: read }
    deny:
      - github: { repos: [acme/secret] }
      - git: { host: git.test, repos: [team/private] }
agents:
  - { id: ci, source_cidrs: [127.0.0.1/32], groups: [g] }
`,
    'repo-case.yaml',
  ).policy
  for (const [method, url] of [
    ['GET', 'https://github.com/acme/Secret.git/info/refs?service=git-upload-pack'],
    ['POST', 'https://github.com/ACME/SECRET/git-upload-pack'],
    ['GET', 'https://api.github.com/repos/acme/Secret/contents/key'],
    ['GET', 'https://raw.githubusercontent.com/Acme/secret/main/key'],
    ['GET', 'https://codeload.github.com/acme/sEcret/tar.gz/main'],
    ['GET', 'https://github.com/acme/Secret/archive/main.zip'],
    ['GET', 'https://git.test/team/Private.git/info/refs?service=git-upload-pack'],
  ] as const)
    t.match(decideRequest(policy, req('ci', method, url)), { verdict: 'deny', reason: 'denied_by_rule' }, url)
  for (const url of [
    'https://github.com/acme/widgets.git/git-receive-pack',
    'https://github.com/acme/Widgets.git/git-receive-pack',
    'https://github.com/ACME/WIDGETS/git-receive-pack',
  ])
    t.match(
      matchRequest(policy, req('ci', 'POST', url)),
      { decision: { verdict: 'allow', ruleId: 'g.allow[0]' }, handling: { repoRuleId: 'g.allow[0]' } },
      `${url}: a rule written Acme/Widgets, with its own push rules, whatever the spelling`,
    )
  t.match(decideRequest(policy, req('ci', 'GET', 'https://git.test/TEAM/app/info/refs?service=git-upload-pack')), {
    verdict: 'allow',
    ruleId: 'g.allow[2]',
  })
  t.match(
    decideRequest(policy, req('ci', 'POST', 'https://github.com/acme/widgets.git/GIT-RECEIVE-PACK')),
    { verdict: 'deny', reason: 'denied_path' },
    'the service suffix is compared as written: the push gate knows only that spelling',
  )
})

t.test('a deny rule requiring a query parameter matches every reading some server could take', async (t) => {
  const policy = parseConfigText(
    `groups:
  g:
    allow: [ { host: q.test } ]
    deny: [ { host: q.test, paths: ["/r/info/refs?service=git-receive-pack"] } ]
agents:
  - { id: ci, source_cidrs: [127.0.0.1/32], groups: [g] }
`,
    'deny-query.yaml',
  ).policy
  for (const query of [
    'service=git-receive-pack',
    'service=git-upload-pack&service=git-receive-pack',
    'service=git-receive-pack&%zz',
    'a=1;service=git-receive-pack',
  ])
    t.match(
      decideRequest(policy, req('ci', 'GET', `http://q.test/r/info/refs?${query}`)),
      { verdict: 'deny', reason: 'denied_by_rule', ruleId: 'g.deny[0]' },
      query,
    )
  t.match(decideRequest(policy, req('ci', 'GET', 'http://q.test/r/info/refs?service=git-upload-pack')), {
    verdict: 'allow',
    ruleId: 'g.allow[0]',
  })
})

t.test('denyByAddress: IP and CIDR deny rules asked of a resolved address', async (t) => {
  const policy = parseConfigText(
    `groups:
  g:
    allow: [ { host: named.test }, { host: 198.51.100.7 } ]
    deny:
      - { host: 203.0.113.0/24 }
      - { host: 198.51.100.7, paths: ["/admin/**"] }
      - { host: named.test }
agents:
  - { id: ci, source_cidrs: [127.0.0.1/32], groups: [g] }
`,
    'deny-address.yaml',
  ).policy
  const facts = { agent: 'ci', host: 'other.test', port: 443 }
  const get = (path: string) => ({ method: 'GET', scheme: 'https' as const, path, query: '' })
  t.match(denyByAddress(policy, facts, '203.0.113.9', null), { reason: 'denied_by_rule', ruleId: 'g.deny[0]' })
  t.match(denyByAddress(policy, facts, '203.0.113.9', get('/')), { ruleId: 'g.deny[0]' })
  t.equal(denyByAddress(policy, facts, '198.51.100.7', null), null, 'a path rule does not refuse a CONNECT')
  t.match(denyByAddress(policy, facts, '198.51.100.7', get('/admin/x')), { ruleId: 'g.deny[1]' })
  t.match(denyByAddress(policy, facts, '198.51.100.7', get('/a/..%2Fadmin/x')), { ruleId: 'g.deny[1]' })
  t.equal(denyByAddress(policy, facts, '198.51.100.7', get('/public')), null)
  t.equal(denyByAddress(policy, facts, '192.0.2.1', get('/')), null, 'an address no IP rule names')
  t.equal(denyByAddress(policy, { ...facts, agent: 'nobody' }, '203.0.113.9', null), null)
})

t.test('a deny rule without ports covers every port, not only upstream.ports', async (t) => {
  const policy = parseConfigText(
    `groups:
  wild:
    allow: [{ host: "*.example.test", ports: [80, 443, 8080, 8443] }]
    deny:
      - { host: uploads.example.test }
      - { host: "*.bad.example.test" }
      - { host: 203.0.113.0/24 }
      - { host: docs.example.test, ports: [8080] }
agents:
  - { id: ci, source_cidrs: [10.0.0.0/8], groups: [wild] }
`,
    'inline.yaml',
  ).policy
  for (const url of [
    'http://uploads.example.test:8080/',
    'https://uploads.example.test:8443/',
    'http://x.bad.example.test:8080/',
  ])
    t.match(decideRequest(policy, req('ci', 'GET', url)), { verdict: 'deny', reason: 'denied_by_rule' }, url)
  t.match(decideConnect(policy, { agent: 'ci', host: 'uploads.example.test', port: 8443 }), {
    verdict: 'deny',
    ruleId: 'wild.deny[0]',
  })
  t.match(denyByAddress(policy, { agent: 'ci', host: 'a.example.test', port: 8080 }, '203.0.113.9', null), {
    ruleId: 'wild.deny[2]',
  })
  t.match(
    decideRequest(policy, req('ci', 'GET', 'http://docs.example.test:8443/')),
    allow('wild.allow[0]'),
    'a deny with its own ports keeps to them',
  )
  t.match(
    decideRequest(policy, req('ci', 'GET', 'http://docs.example.test:8080/')),
    deny('denied_by_rule', 'wild.deny[3]'),
  )
})
