import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { replayRecords } from '../../../src/lifecycle/replay.js'
import { allowed, rec } from '../../helpers/decision-records.js'

const TEXT = readFileSync(new URL('../../fixtures/lifecycle/suggest-config.yaml', import.meta.url), 'utf8')
const OLD = parseConfigText(TEXT, 'old.yaml')
/** NEW: npm gone from builders, *.example.io added. */
const NEW = parseConfigText(
  TEXT.replace('      - preset: npm                       # registry.npmjs.org\n', '      - host: "*.example.io"\n'),
  'new.yaml',
)

t.test('allow→deny and deny→allow, grouped by agent, host and rule, with totals', async (t) => {
  const report = replayRecords(
    [
      allowed('ci', 'GET https://registry.npmjs.org/react', 'builders.allow[0]'),
      allowed('ci', 'GET https://registry.npmjs.org/lodash', 'builders.allow[0]', { repeats: 2 }),
      allowed('auditor', 'GET https://registry.npmjs.org/react', 'builders.allow[0]', { mode: 'audit' }),
      rec('ci', 'CONNECT api.example.io:443'),
      allowed('ci', 'GET https://pkgs.example.net/x', 'builders.allow[3]'),
    ],
    NEW,
  )
  t.same(report.totals, { allowToDeny: 5, denyToAllow: 1, undetermined: 0, unchanged: 1, skipped: 0, approved: 0 })
  t.match(report.flips, [
    {
      direction: 'allow_to_deny',
      agent: 'ci',
      host: 'registry.npmjs.org',
      port: 443,
      from: { verdict: 'allow', rule: 'builders.allow[0]' },
      to: { verdict: 'deny', reason: 'denied_no_rule', rule: null },
      requests: 4,
      records: 2,
      methods: ['GET'],
      paths: ['/react', '/lodash'],
    },
    { direction: 'allow_to_deny', agent: 'auditor', requests: 1 },
    {
      direction: 'deny_to_allow',
      host: 'api.example.io',
      from: { reason: 'denied_no_rule' },
      to: { reason: 'allowed', rule: 'builders.allow[0]' },
    },
  ])
})

t.test('requests an approval allowed are no new denials: approvals aside, or under both policies', async (t) => {
  const approved = allowed('ci', 'GET https://registry.npmjs.org/react', 'approval:01M96R1Y0000000000000000AA', {
    repeats: 2,
  })
  const alone = replayRecords([approved], OLD)
  t.match(alone.totals, { allowToDeny: 0, approved: 3 }, 'the same config does not flip them')
  t.same(alone.flips, [])
  const against = replayRecords([approved], NEW, OLD)
  t.match(against.totals, { approved: 0, allowToDeny: 3 }, 'with --against, a policy change under them still shows')
})

t.test('records that are not policy decisions are skipped, by reason', async (t) => {
  const report = replayRecords(
    [
      rec(null, 'CONNECT a.example.io:443', { reason: 'denied_auth_required' }),
      rec('ci', 'CONNECT a.example.io:443', { reason: 'denied_sni_mismatch' }),
    ],
    NEW,
  )
  t.same(report.skipped, [
    { reason: 'denied_auth_required', requests: 1 },
    { reason: 'denied_sni_mismatch', requests: 1 },
  ])
  t.equal(report.totals.skipped, 2)
})

t.test('a decision that needs the unrecorded query is undetermined, unless both policies agree', async (t) => {
  const refs = allowed('ci', 'GET https://github.com/acme/widgets.git/info/refs', 'builders.allow[1]')
  const alone = replayRecords([refs], OLD)
  t.match(alone.undetermined, [{ agent: 'ci', host: 'github.com', missing: 'query', requests: 1 }])
  t.equal(alone.totals.allowToDeny, 0, 'nothing guessed')
  const against = replayRecords([refs], NEW, OLD)
  t.equal(against.totals.unchanged, 1, 'the repo rule is the same in both: unchanged whatever the query was')
})

t.test(
  'a spliced tunnel to a host the new policy intercepts is undetermined (its requests were never seen)',
  async (t) => {
    const tunnel = allowed('ci', 'CONNECT docs.example.net:443', 'builders.allow[2]', { tls: 'tunnel' })
    const report = replayRecords([tunnel], OLD)
    t.match(report.undetermined, [{ host: 'docs.example.net', missing: 'tunnel_contents' }])
  },
)

t.test('a removed agent: its allowed requests flip to denied_auth_invalid', async (t) => {
  const NO_CI = parseConfigText(TEXT.replace('  - id: ci\n', '  - id: ci2\n'), 'no-ci.yaml')
  const report = replayRecords([allowed('ci', 'GET https://pkgs.example.net/x', 'builders.allow[3]')], NO_CI)
  t.match(report.flips, [{ direction: 'allow_to_deny', to: { reason: 'denied_auth_invalid' } }])
})

t.test('a private-address denial flips when the new config names the address in allow_private', async (t) => {
  const text = TEXT.replace('allow_private: []', 'allow_private: [10.0.0.0/8]')
  const report = replayRecords(
    [rec('ci', 'GET https://pkgs.example.net/x', { reason: 'denied_private_address', address: '10.0.0.5' })],
    parseConfigText(text, 'private.yaml'),
  )
  t.match(report.flips, [{ direction: 'deny_to_allow', from: { reason: 'denied_private_address' } }])
})

t.test(
  'with the old policy, the record narrows the query: a clone that was allowed flips when its repo rule goes',
  async (t) => {
    const NO_REPO = parseConfigText(
      TEXT.replace('      - github: { repos: ["acme/widgets"], access: read }\n', ''),
      'no-repo.yaml',
    )
    const refs = allowed('ci', 'GET https://github.com/acme/widgets.git/info/refs', 'builders.allow[1]')
    t.equal(replayRecords([refs], NO_REPO).totals.allowToDeny, 1, 'alone too: no rule left on the host reads the query')
    // A rule left that reads the query (write access: receive-pack too): undetermined alone, unchanged against OLD.
    const WRITE = parseConfigText(TEXT.replace('access: read }', 'access: write }'), 'write.yaml')
    t.match(replayRecords([refs], WRITE).undetermined, [{ missing: 'query' }], 'alone: undetermined')
    t.equal(replayRecords([refs], WRITE, OLD).totals.unchanged, 1, 'against OLD: the fetch was upload-pack')
    const report = replayRecords([refs], NO_REPO, OLD)
    t.match(report.flips, [{ direction: 'allow_to_deny', host: 'github.com', to: { reason: 'denied_no_rule' } }])
  },
)

t.test('package rules are re-decided by name; a too_new record stays too new while min_age holds it', async (t) => {
  const withPackages = (block: string): ReturnType<typeof parseConfigText> =>
    parseConfigText(
      TEXT.replace(
        '      - preset: npm                       # registry.npmjs.org\n',
        `      - preset: npm\n        packages: ${block}\n`,
      ),
      'packages.yaml',
    )
  const GUARDED = withPackages('{ deny: [left-pad], min_age: 72h }')
  const react = allowed('ci', 'GET https://registry.npmjs.org/react', 'builders.allow[0]')
  const leftPad = allowed('ci', 'GET https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz', 'builders.allow[0]')
  const young = rec('ci', 'GET https://registry.npmjs.org/react/-/react-19.0.0.tgz', {
    reason: 'denied_package',
    detail: 'too_new',
    rule: 'builders.allow[0]',
  })
  const denied = replayRecords([react, leftPad, young], GUARDED)
  t.match(denied.flips, [
    {
      direction: 'allow_to_deny',
      paths: ['/left-pad/-/left-pad-1.3.0.tgz'],
      to: { reason: 'denied_package', rule: 'builders.allow[0]' },
    },
  ])
  t.equal(denied.totals.unchanged, 2, 'react passes; the young react tarball is still too new')
  const lifted = replayRecords([young], withPackages('{ deny: [left-pad] }'))
  t.match(lifted.flips, [{ direction: 'deny_to_allow', from: { reason: 'denied_package' }, to: { reason: 'allowed' } }])
  const exempt = replayRecords([young], withPackages('{ min_age: 72h, min_age_exempt: [react] }'))
  t.equal(exempt.totals.denyToAllow, 1, 'an exemption lifts it too')
})

t.test('a packument refused whole as too_new (no version) stays too new while min_age holds it', async (t) => {
  const GUARDED = parseConfigText(
    TEXT.replace(
      '      - preset: npm                       # registry.npmjs.org\n',
      '      - preset: npm\n        packages: { min_age: 72h }\n',
    ),
    'packages.yaml',
  )
  const whole = rec('ci', 'GET https://registry.npmjs.org/young', {
    reason: 'denied_package',
    detail: 'too_new',
    rule: 'builders.allow[0]',
  })
  const same = replayRecords([whole], GUARDED)
  t.same(same.flips, [], 'no flip under the policy that refused it')
  t.equal(same.totals.unchanged, 1)
  t.match(replayRecords([whole], OLD).flips, [{ direction: 'deny_to_allow', to: { reason: 'allowed' } }], 'lifted')
})

t.test("an upstream failure's second record is not a second request, nor the verdict", async (t) => {
  // Audit mode: the would-be denial, then the upstream failure of the same request.
  const audited = rec('auditor', 'GET http://paste.example.org/x', { mode: 'audit', would_deny: true })
  const failed = rec('auditor', 'GET http://paste.example.org/x', {
    id: audited.id,
    mode: 'audit',
    reason: 'upstream_error',
    detail: 'dns',
  })
  // Enforce: allowed, then the upstream failed; and a CONNECT whose dial failed (one record).
  const ok = allowed('ci', 'GET https://registry.npmjs.org/react', 'builders.allow[0]')
  const okFailed = rec('ci', 'GET https://registry.npmjs.org/react', { id: ok.id, reason: 'upstream_error' })
  const dial = rec('ci', 'CONNECT registry.npmjs.org:443', { reason: 'upstream_error', detail: 'refused' })
  const report = replayRecords([audited, failed, ok, okFailed, dial], OLD)
  t.equal(report.requests, 3, 'three requests, not five')
  t.same(report.flips, [], 'nothing flips under the same policy')
  t.same(report.totals, { allowToDeny: 0, denyToAllow: 0, undetermined: 0, unchanged: 3, skipped: 0, approved: 0 })
})

t.test(
  "GitHub API refusals: what the route refused stays refused; what the body refused stays the gate's",
  async (t) => {
    const WRITE = parseConfigText(
      TEXT.replace(
        'access: read }',
        'access: write, api: { pulls: create }, push: { branches: ["agent/{agent}/**"] } }',
      ),
      'write.yaml',
    )
    const api = 'https://api.github.com/repos/acme/widgets'
    const refused = (request: string, detail: string): ReturnType<typeof rec> =>
      rec('ci', request, { reason: 'denied_repo_write', detail, rule: 'builders.allow[2]' })
    const records = [
      refused(`PUT ${api}/pulls/1/merge`, 'merge'),
      refused(`POST ${api}/issues`, 'issue_create'),
      refused(`DELETE ${api}/git/refs/heads/main`, 'branch_not_allowed'),
      // Refused for its body (the head branch): the policy allowed the request, and still does.
      refused(`POST ${api}/pulls`, 'branch_not_allowed'),
    ]
    const same = replayRecords(records, WRITE)
    t.same(same.flips, [], 'nothing flips under the policy that refused them')
    t.equal(same.totals.unchanged, 4)
    const gone = replayRecords(records, OLD)
    t.match(
      gone.flips,
      [
        {
          direction: 'allow_to_deny',
          requests: 1,
          paths: ['/repos/acme/widgets/pulls'],
          to: { reason: 'denied_method' },
        },
      ],
      'read access: only the body-refused write was allowed by the policy before',
    )
    t.equal(gone.totals.unchanged, 3)
  },
)

t.test(
  'an upstream failure of a request an approval let through counts as approved, not as a new denial',
  async (t) => {
    const failed = rec('ci', 'CONNECT nohost.example.org:443', {
      reason: 'upstream_error',
      detail: 'dns',
      rule: 'approval:01M96R1Y0000000000000000AA',
    })
    const report = replayRecords([failed], OLD)
    t.match(report.totals, { approved: 1, allowToDeny: 0 })
  },
)

t.test('any second record of a request is not counted again, in whatever order the records come', async (t) => {
  // Audit mode: a would-be denial, then the private address that stopped it anyway (newest first, as Redis pages are).
  const audited = rec('auditor', 'GET http://paste.example.org/x', { mode: 'audit', would_deny: true })
  const stopped = rec('auditor', 'GET http://paste.example.org/x', {
    id: audited.id,
    time: new Date(Date.parse(audited.time) + 1).toISOString(),
    mode: 'audit',
    reason: 'denied_private_address',
    address: '127.0.0.2',
  })
  const report = replayRecords([stopped, audited], OLD)
  t.equal(report.requests, 1, 'one request')
  t.same(report.flips, [], 'decided by its first record: denied_no_rule, still denied')
})
