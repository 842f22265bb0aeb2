import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { suggestRules, type SuggestReport } from '../../../src/lifecycle/suggest.js'
import type { SuggestedRule } from '../../../src/lifecycle/rule-yaml.js'
import type { DecisionRecord } from '../../../src/telemetry/events.js'
import { rec } from '../../helpers/decision-records.js'

const FILE = 'suggest-config.yaml'
const TEXT = readFileSync(new URL('../../fixtures/lifecycle/suggest-config.yaml', import.meta.url), 'utf8')
const CONFIG = parseConfigText(TEXT, FILE)
const compile = (text: string): ReturnType<typeof parseConfigText> => parseConfigText(text, FILE)

function suggest(records: DecisionRecord[], scope: { agent?: string; group?: string } = {}): SuggestReport {
  return suggestRules({ config: CONFIG, configText: TEXT, records, compile, ...scope })
}

function rulesOf(report: SuggestReport, target = 0): SuggestedRule[] {
  return (report.targets[target]?.rules ?? []).map((e) => e.rule)
}

// [behaviour, records, scope, expected rules for the first target]
const MINIMISATION: ReadonlyArray<
  readonly [string, () => DecisionRecord[], { agent?: string; group?: string }, SuggestedRule[]]
> = [
  [
    'sibling subdomains fold into *.parent',
    () => [rec('ci', 'CONNECT a.cdn.example.org:443'), rec('ci', 'CONNECT b.cdn.example.org:443')],
    {},
    [{ host: '*.cdn.example.org' }],
  ],
  [
    'siblings stay apart when a host under the parent is denied on purpose',
    () => [rec('ci', 'CONNECT a.example.com:443'), rec('ci', 'CONNECT b.example.com:443')],
    {},
    [{ host: 'a.example.com' }, { host: 'b.example.com' }],
  ],
  [
    'siblings stay apart under shared hosting',
    () => [rec('ci', 'CONNECT alice.github.io:443'), rec('ci', 'CONNECT bob.github.io:443')],
    {},
    [{ host: 'alice.github.io' }, { host: 'bob.github.io' }],
  ],
  [
    'siblings stay apart when another agent was denied one of them by rule',
    () => [
      rec('ci', 'CONNECT a.example.net:443'),
      rec('ci', 'CONNECT b.example.net:443'),
      rec('auditor', 'CONNECT secret.example.net:443', { reason: 'denied_by_rule', rule: 'agents.x.deny[0]' }),
    ],
    { agent: undefined },
    [{ host: 'a.example.net' }, { host: 'b.example.net' }],
  ],
  [
    'deeper subdomains join the wildcard that covers them (any depth), not rules of their own',
    () => [
      rec('ci', 'CONNECT p.cdn.example.org:443'),
      rec('ci', 'CONNECT q.cdn.example.org:443'),
      rec('ci', 'CONNECT x.y.z.cdn.example.org:443'),
      rec('ci', 'CONNECT deep.a.cdn.example.org:443'),
      rec('ci', 'CONNECT m.a.cdn.example.org:443'),
    ],
    {},
    [{ host: '*.cdn.example.org' }],
  ],
  [
    'hosts under a shared-hosting parent stay listed, and no wildcard above covers that parent',
    () => [
      rec('ci', 'CONNECT a.blob.core.windows.net:443'),
      rec('ci', 'CONNECT b.blob.core.windows.net:443'),
      rec('ci', 'CONNECT c.core.windows.net:443'),
      rec('ci', 'CONNECT d.core.windows.net:443'),
    ],
    {},
    [
      { host: 'a.blob.core.windows.net' },
      { host: 'b.blob.core.windows.net' },
      { host: 'c.core.windows.net' },
      { host: 'd.core.windows.net' },
    ],
  ],
  [
    'a single host is not folded',
    () => [rec('ci', 'CONNECT only.example.org:443')],
    {},
    [{ host: 'only.example.org' }],
  ],
  [
    'hosts of a built-in preset become the preset',
    () => [rec('ci', 'CONNECT static.crates.io:443'), rec('ci', 'CONNECT index.crates.io:443')],
    {},
    [{ preset: 'crates' }],
  ],
  [
    'a user preset is recognised',
    () => [rec('loner', 'CONNECT mirror.internal.example:443')],
    {},
    [{ preset: 'internal-mirror' }],
  ],
  [
    'a preset hosts a read; a write on it stays a host rule with its method',
    () => [
      rec('loner', 'CONNECT files.pythonhosted.org:443'),
      rec('ci', 'PUT https://pkgs.example.net/pkg/x', { reason: 'denied_method', rule: 'builders.allow[3]' }),
    ],
    { agent: 'loner' },
    [{ preset: 'pypi' }],
  ],
  [
    'a method a host rule does not allow becomes a rule for that method',
    () => [rec('ci', 'PUT https://pkgs.example.net/pkg/x', { reason: 'denied_method', rule: 'builders.allow[3]' })],
    {},
    [{ host: 'pkgs.example.net', methods: ['PUT'] }],
  ],
  [
    'git smart-HTTP paths of an unlisted repo become a github repo rule with read access',
    () => [
      rec('ci', 'GET https://github.com/attacker/exfil.git/info/refs', {
        reason: 'denied_path',
        rule: 'builders.allow[1]',
      }),
      rec('ci', 'POST https://github.com/attacker/exfil.git/git-upload-pack', {
        reason: 'denied_path',
        rule: 'builders.allow[1]',
      }),
    ],
    {},
    [{ github: { repos: ['attacker/exfil'], access: 'read' } }],
  ],
  [
    'a push to a read-only repo asks for access: write',
    () => [
      rec('ci', 'GET https://github.com/acme/widgets.git/info/refs', {
        reason: 'denied_repo_write',
        rule: 'builders.allow[1]',
        detail: 'read_only',
      }),
    ],
    {},
    [{ github: { repos: ['acme/widgets'], access: 'write' } }],
  ],
  [
    'GitHub archive and API paths of a repo join its repo rule',
    () => [
      rec('loner', 'GET https://api.github.com/repos/octo/tool/releases'),
      rec('loner', 'GET https://codeload.github.com/octo/tool/tar.gz/main'),
    ],
    {},
    [{ github: { repos: ['octo/tool'], access: 'read' } }],
  ],
  [
    'git on another forge becomes a git rule for that host',
    () => [rec('loner', 'GET https://gitlab.example.net/team/app.git/info/refs')],
    {},
    [{ git: { host: 'gitlab.example.net', repos: ['team/app'], access: 'read' } }],
  ],
  [
    'a port outside upstream.ports is listed',
    () => [rec('ci', 'CONNECT svc.example.io:8443')],
    {},
    [{ host: 'svc.example.io', ports: [8443] }],
  ],
  [
    'plain HTTP requests give the methods seen',
    () => [rec('ci', 'GET http://plain.example.io/a'), rec('ci', 'HEAD http://plain.example.io/b')],
    {},
    [{ host: 'plain.example.io', methods: ['GET', 'HEAD'] }],
  ],
  [
    'a host the policy limits by path keeps paths: the ones seen',
    () => [rec('ci', 'GET https://docs.example.net/private/a', { reason: 'denied_path', rule: 'builders.allow[2]' })],
    {},
    [{ host: 'docs.example.net', methods: ['GET'], paths: ['/private/a'] }],
  ],
  [
    'more than four paths become their common directory /**',
    () =>
      ['a', 'b', 'c', 'd', 'e'].map((p) =>
        rec('ci', `GET https://docs.example.net/private/x/${p}`, { reason: 'denied_path', rule: 'builders.allow[2]' }),
      ),
    {},
    [{ host: 'docs.example.net', methods: ['GET'], paths: ['/private/x/**'] }],
  ],
  [
    'a path-limited host gets one rule per set of methods seen on a path, never a method on a path it was not seen on',
    () => [
      rec('ci', 'GET https://docs.example.net/api/v1/items', { reason: 'denied_path', rule: 'builders.allow[2]' }),
      rec('ci', 'POST https://docs.example.net/api/v1/items', { reason: 'denied_path', rule: 'builders.allow[2]' }),
      rec('ci', 'GET https://docs.example.net/blog/post1', { reason: 'denied_path', rule: 'builders.allow[2]' }),
    ],
    {},
    [
      { host: 'docs.example.net', methods: ['GET', 'POST'], paths: ['/api/v1/items'] },
      { host: 'docs.example.net', methods: ['GET'], paths: ['/blog/post1'] },
    ],
  ],
  [
    'an audit-mode agent’s would_deny records are suggested for it',
    () => [rec('auditor', 'CONNECT newhost.example.io:443', { mode: 'audit', would_deny: true, tls: 'tunnel' })],
    {},
    [{ host: 'newhost.example.io' }],
  ],
]

for (const [name, records, scope, expected] of MINIMISATION) {
  t.test(name, async (t) => {
    const report = suggest(records(), scope)
    t.same(rulesOf(report), expected)
    t.equal(report.targets[0]?.uncovered.length, 0, 'the edited config allows every record')
  })
}

t.test('rules go to each agent, or to the group with --group', async (t) => {
  const records = [rec('ci', 'CONNECT one.example.io:443'), rec('auditor', 'CONNECT two.example.dev:443')]
  const perAgent = suggest(records)
  t.same(
    perAgent.targets.map((x) => [x.target.kind, x.target.name, x.target.key]),
    [
      ['agent', 'ci', 'agents[0].allow'],
      ['agent', 'auditor', 'agents[1].allow'],
    ],
  )
  const group = suggest(records, { group: 'builders' })
  t.same(
    group.targets.map((x) => x.target.key),
    ['groups.builders.allow'],
  )
  t.same(rulesOf(group), [{ host: 'one.example.io' }, { host: 'two.example.dev' }])
  t.same(
    group.targets[0]?.rules.map((e) => e.agents),
    [['ci'], ['auditor']],
  )
})

t.test('counts include folded repeats; first and last seen span the records', async (t) => {
  const report = suggest([
    rec('ci', 'CONNECT x.example.io:443', { repeats: 4, time: '2026-11-25T09:00:00.000Z' }),
    rec('ci', 'CONNECT x.example.io:443', { time: '2026-11-25T11:00:00.000Z' }),
  ])
  t.match(report.targets[0]?.rules[0], {
    requests: 6,
    firstSeen: '2026-11-25T09:00:00.000Z',
    lastSeen: '2026-11-25T11:00:00.000Z',
    hosts: [{ host: 'x.example.io', port: 443, requests: 6 }],
  })
  t.equal(report.requests, 6)
})

t.test('warnings: write methods, paste services, private addresses, seen only once, wildcards', async (t) => {
  const report = suggest([
    rec('ci', 'POST http://pastebin.example.com/api', { address: '10.0.0.7' }),
    rec('ci', 'CONNECT a.cdn.example.org:443'),
    rec('ci', 'CONNECT b.cdn.example.org:443'),
  ])
  const [paste, wildcard] = report.targets[0]?.rules ?? []
  t.match(paste?.warnings, [
    /write method POST/,
    /pastebin\.example\.com looks like a paste, upload or webhook service/,
    /private address 10\.0\.0\.7 \(private\)/,
    /seen only once/,
  ])
  t.match(wildcard?.warnings, [/admits every subdomain of cdn\.example\.org, not only the 2 seen/])
  t.same(
    report.targets[0]?.uncovered.map((u) => [u.host, u.reason]),
    [['pastebin.example.com', 'denied_private_address']],
  )
})

t.test('a note says why siblings were not folded', async (t) => {
  const report = suggest([rec('ci', 'CONNECT a.example.com:443'), rec('ci', 'CONNECT b.example.com:443')])
  t.match(report.targets[0]?.notes, [
    /not folded into \*\.example\.com: uploads\.example\.com is denied on purpose \(builders\.deny\[0\]\)/,
  ])
})

t.test('denials no allow rule lifts are listed, not suggested', async (t) => {
  const report = suggest([
    rec('ci', 'CONNECT uploads.example.com:443', { reason: 'denied_by_rule', rule: 'builders.deny[0]' }),
    rec(null, 'CONNECT x.example.io:443', { reason: 'denied_auth_required' }),
    rec('ci', 'GET https://registry.npmjs.org/x', { reason: 'denied_rate_limited' }),
    rec('ghost', 'CONNECT y.example.io:443'),
  ])
  t.same(report.targets, [])
  t.same(
    report.notSuggested.map((n) => [n.reason, n.hosts, n.rules]),
    [
      ['denied_by_rule', ['uploads.example.com'], ['builders.deny[0]']],
      ['denied_auth_required', ['x.example.io'], []],
      ['denied_rate_limited', ['registry.npmjs.org'], []],
      ['denied_no_rule', ['y.example.io'], []],
    ],
  )
  t.match(report.notSuggested[3]?.why, /agent ghost is not in the config/)
})

t.test('allowed records and other agents are ignored under --agent', async (t) => {
  const report = suggest(
    [
      rec('ci', 'CONNECT a.example.io:443', { decision: 'allow', reason: 'allowed' }),
      rec('loner', 'CONNECT b.example.io:443'),
    ],
    { agent: 'ci' },
  )
  t.same(report.targets, [])
  t.equal(report.requests, 0)
})

t.test('the edited config keeps every original line and compiles', async (t) => {
  const report = suggest([rec('ci', 'CONNECT one.example.io:443'), rec('inline', 'CONNECT two.example.io:443')])
  const before = TEXT.split('\n')
  const after = report.editedText.split('\n')
  const remaining = [...after]
  for (const line of before) {
    const i = remaining.indexOf(line)
    if (line.startsWith('  - { id: inline')) continue // an inline agent is rewritten as a block to take its rules
    t.ok(i >= 0, `kept: ${line}`)
    remaining.splice(0, i + 1)
  }
  const edited = compile(report.editedText)
  t.ok(edited.policy.agents.has('inline'))
  t.match(report.editedText, /# suggested: 1 denied request by ci \(one\.example\.io ×1\)/)
})

t.test(
  'a push or GitHub write no repo rule answers gets no host rule: the §8 gates come with repo rules',
  async (t) => {
    const report = suggest([
      // Odd spellings the proxy refused: no repo reads from them, and a host rule would skip both gates.
      rec('ci', 'POST https://github.com/acme/widgets.git/git-receive-pack/', { reason: 'denied_path' }),
      rec('ci', 'PUT https://api.github.com/repositories/1/pulls/1/merge', { reason: 'denied_path' }),
      rec('ci', 'POST http://git.example.org/team/app.git/x/git-receive-pack', { reason: 'denied_no_rule' }),
      rec('ci', 'CONNECT pkgs.example.org:443'),
    ])
    t.same(
      rulesOf(report),
      [{ git: { host: 'git.example.org', repos: ['team/app.git/x'], access: 'write' } }, { host: 'pkgs.example.org' }],
      'a push a repo rule reads gets one (gated); the ordinary host its host rule',
    )
    t.match(report.notSuggested, [
      { requests: 2, hosts: ['api.github.com', 'github.com'], why: /only a github:\/git: repo rule may open it/ },
    ])
    t.match(
      report.targets[0]?.uncovered,
      [{ host: 'github.com' }, { host: 'api.github.com' }],
      'and they stay denied under the suggestion',
    )
  },
)

t.test('a host rule suggested for GitHub warns that it skips the push and API gates', async (t) => {
  const report = suggest([rec('ci', 'CONNECT api.github.com:443'), rec('ci', 'CONNECT api.github.com:443')])
  t.same(rulesOf(report), [{ host: 'api.github.com' }])
  t.match(report.targets[0]?.rules[0]?.warnings, [/without the push and API gates/])
})

t.test('a host seen on two default ports names each port in the comment', async (t) => {
  const report = suggest([
    rec('ci', 'GET https://two-ports.example.io/a'),
    rec('ci', 'GET https://two-ports.example.io/b'),
    rec('ci', 'GET http://two-ports.example.io/a'),
  ])
  t.same(rulesOf(report), [{ host: 'two-ports.example.io', methods: ['GET'] }], 'used alike: one rule')
  t.match(report.editedText, /\(two-ports\.example\.io:443 ×2, two-ports\.example\.io:80 ×1\)/)
  t.notMatch(report.editedText, /\(two-ports\.example\.io ×/, 'never the same bare name twice')
})

t.test('ports used differently get a rule each: nothing seen on one port is opened on another', async (t) => {
  const tunnelAndGet = suggest([
    rec('ci', 'CONNECT weird.example.io:443'),
    rec('ci', 'CONNECT weird.example.io:443'),
    rec('ci', 'GET http://weird.example.io:8080/port'),
  ])
  t.same(rulesOf(tunnelAndGet), [
    { host: 'weird.example.io', ports: [443] },
    { host: 'weird.example.io', ports: [8080], methods: ['GET'] },
  ])
  const defaults = suggest([rec('ci', 'CONNECT 203.0.113.7:443'), rec('ci', 'GET http://203.0.113.7/ip4')])
  t.same(rulesOf(defaults), [
    { host: '203.0.113.7', ports: [443] },
    { host: '203.0.113.7', ports: [80], methods: ['GET'] },
  ])
  const methods = suggest([
    rec('ci', 'GET http://m.example.io:8080/a'),
    rec('ci', 'POST http://m.example.io:9090/b'),
    rec('ci', 'GET http://m.example.io:7070/c'),
  ])
  t.same(rulesOf(methods), [
    { host: 'm.example.io', ports: [7070, 8080], methods: ['GET'] },
    { host: 'm.example.io', ports: [9090], methods: ['POST'] },
  ])
  const siblings = suggest([
    rec('ci', 'CONNECT a.cdn.example.org:443'),
    rec('ci', 'GET http://b.cdn.example.org:8080/x'),
    rec('ci', 'GET http://c.cdn.example.org:8080/y'),
  ])
  t.same(
    rulesOf(siblings),
    [{ host: 'a.cdn.example.org' }, { host: '*.cdn.example.org', ports: [8080], methods: ['GET'] }],
    'a wildcard folds only hosts used alike',
  )
})

t.test("a '*' in a recorded repository path is never a wildcard repo rule", async (t) => {
  const globbed = [
    rec('ci', 'GET https://github.com/*/*/info/refs', { reason: 'denied_no_rule' }),
    rec('ci', 'POST https://github.com/acme/*/git-receive-pack', { reason: 'denied_no_rule' }),
    rec('ci', 'GET https://git.corp.example/*/*/info/refs', { reason: 'denied_no_rule' }),
    rec('ci', 'GET https://api.github.com/repos/acme/*/contents/x', { reason: 'denied_no_rule' }),
  ]
  const report = suggest([
    ...globbed,
    rec('ci', 'GET https://github.com/acme/app/info/refs', { reason: 'denied_no_rule' }),
  ])
  t.same(rulesOf(report), [{ github: { repos: ['acme/app'], access: 'read' } }], 'the literal repository alone')
  t.notMatch(report.editedText, /\*\/\*|acme\/\*/, 'no globbed repository reaches the config')
  const withheld = report.notSuggested.find((n) => /glob character/.test(n.why))
  t.equal(withheld?.requests, 4, 'and each is listed as not suggested, saying why')
})

t.test(
  'a suggested config that does not compile is reported as suggest’s fault, not at a line of the operator’s file',
  async (t) => {
    const failing = (text: string): ReturnType<typeof parseConfigText> =>
      parseConfigText(text.replace('- host: a.example.org', '- host: A.example.org'), FILE)
    t.throws(
      () =>
        suggestRules({
          config: CONFIG,
          configText: TEXT,
          records: [rec('ci', 'CONNECT a.example.org:443')],
          compile: failing,
        }),
      {
        code: 'PC_ERR_INTERNAL',
        message:
          /^a suggested rule does not compile \(a bug in suggest\): agents\[0\]\.allow\[0\]\.host: 'A\.example\.org' is not in normal form/,
      },
    )
  },
)

t.test("a path with '*' on a host limited by path is not suggested, never widened to a directory", async (t) => {
  const report = suggest(
    ['/v2/a*b', '/v2/*', '/v2/**', '/v2/ok'].map((p) => rec('ci', `GET https://docs.example.net${p}`)),
    { agent: 'ci' },
  )
  t.same(rulesOf(report), [{ host: 'docs.example.net', methods: ['GET'], paths: ['/v2/ok'] }])
  t.match(report.notSuggested, [{ reason: 'denied_no_rule', requests: 3, why: /holds '\*' or '\?'/ }])
  t.notMatch(report.editedText, /\/v2\/\*\*/)
})
