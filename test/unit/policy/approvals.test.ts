import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import {
  applyApprovals,
  approvalOfRequest,
  approvalCovers,
  describeApproval,
  indexApprovals,
  matchRequestApproved,
  type Approval,
  type ApprovalFacts,
} from '../../../src/policy/approvals.js'
import type { DenyDecision, RequestFacts } from '../../../src/policy/types.js'

const NOW = Date.parse('2026-12-01T12:00:00Z')
const approval = (
  scope: Approval['scope'],
  method: string,
  path: string | null,
  expiresAt = '2026-12-01T13:00:00Z',
): Approval => ({
  id: 'A1',
  request_id: 'R1',
  agent: 'ci',
  scope,
  method,
  host: 'h.test',
  port: 443,
  path,
  created_at: '2026-12-01T11:00:00Z',
  expires_at: expiresAt,
  approved_by: 'alice',
  reason: 'test',
})
const facts = (method: string, path: string | null, over: Partial<ApprovalFacts> = {}): ApprovalFacts => ({
  agent: 'ci',
  method,
  host: 'h.test',
  port: 443,
  path,
  ...over,
})

const CASES: ReadonlyArray<readonly [string, Approval, ApprovalFacts, boolean]> = [
  ['exact opens the same request', approval('exact', 'GET', '/a/b.txt'), facts('GET', '/a/b.txt'), true],
  ['exact does not open a sibling', approval('exact', 'GET', '/a/b.txt'), facts('GET', '/a/c.txt'), false],
  ['exact does not open another method', approval('exact', 'GET', '/a/b.txt'), facts('POST', '/a/b.txt'), false],
  ['path-prefix opens the directory', approval('path-prefix', 'GET', '/a/b.txt'), facts('GET', '/a/c/d.txt'), true],
  [
    'path-prefix does not open a look-alike directory',
    approval('path-prefix', 'GET', '/a/b.txt'),
    facts('GET', '/ab/c'),
    false,
  ],
  [
    'path-prefix does not open another method',
    approval('path-prefix', 'GET', '/a/b.txt'),
    facts('DELETE', '/a/c'),
    false,
  ],
  ['path-prefix of a top-level path opens itself', approval('path-prefix', 'GET', '/top'), facts('GET', '/top'), true],
  [
    'path-prefix of a top-level path opens below it',
    approval('path-prefix', 'GET', '/top'),
    facts('GET', '/top/x/y'),
    true,
  ],
  [
    'path-prefix of a top-level path is not the whole host',
    approval('path-prefix', 'GET', '/top'),
    facts('GET', '/other'),
    false,
  ],
  [
    'path-prefix of a top-level path is not a look-alike',
    approval('path-prefix', 'GET', '/top'),
    facts('GET', '/topx'),
    false,
  ],
  ['path-prefix of the root opens only the root', approval('path-prefix', 'GET', '/'), facts('GET', '/x'), false],
  [
    'path-prefix of a directory path opens under it',
    approval('path-prefix', 'GET', '/simple/requests/'),
    facts('GET', '/simple/requests/x.whl'),
    true,
  ],
  ['host opens any method and path', approval('host', 'GET', '/a'), facts('DELETE', '/z'), true],
  ['host opens the CONNECT too', approval('host', 'GET', '/a'), facts('CONNECT', null), true],
  ['a CONNECT approval opens the CONNECT', approval('exact', 'CONNECT', null), facts('CONNECT', null), true],
  [
    'a CONNECT approval does not open inner requests',
    approval('path-prefix', 'CONNECT', null),
    facts('GET', '/x'),
    false,
  ],
  ['a request approval does not open a CONNECT', approval('path-prefix', 'GET', '/a/b'), facts('CONNECT', null), false],
  ['another agent is not covered', approval('host', 'GET', '/a'), facts('GET', '/a', { agent: 'other' }), false],
  ['another port is not covered', approval('host', 'GET', '/a'), facts('GET', '/a', { port: 8443 }), false],
  [
    'an expired approval covers nothing',
    approval('host', 'GET', '/a', '2026-12-01T11:59:59Z'),
    facts('GET', '/a'),
    false,
  ],
]
for (const [behaviour, a, f, covered] of CASES) {
  t.test(behaviour, async (t) => {
    t.equal(approvalCovers(a, f, NOW), covered)
  })
}

t.test('describeApproval says what approvalCovers opens', async (t) => {
  t.equal(describeApproval(approval('exact', 'GET', '/a/b.txt')), 'GET h.test:443/a/b.txt')
  t.equal(describeApproval(approval('path-prefix', 'GET', '/a/b.txt')), 'GET h.test:443/a/…')
  t.equal(describeApproval(approval('path-prefix', 'GET', '/top')), 'GET h.test:443/top and below')
  t.equal(describeApproval(approval('host', 'GET', '/a')), 'any request to h.test:443')
  t.equal(describeApproval(approval('exact', 'CONNECT', null)), 'CONNECT h.test:443')
  t.equal(
    describeApproval({ ...approval('exact', 'CONNECT', null), host: '2001:db8::1' }),
    'CONNECT [2001:db8::1]:443',
    'an IPv6 address in brackets',
  )
})

t.test('only policy denials are lifted, with the approval as the rule', async (t) => {
  const index = indexApprovals([approval('host', 'GET', '/a')])
  const path: DenyDecision = { verdict: 'deny', reason: 'denied_path', ruleId: 'g.allow[0]' }
  t.match(applyApprovals(path, facts('GET', '/a'), index, NOW), { verdict: 'allow', ruleId: 'approval:A1' })
  const limited: DenyDecision = { verdict: 'deny', reason: 'denied_rate_limited', ruleId: null }
  t.equal(applyApprovals(limited, facts('GET', '/a'), index, NOW), limited)
  const privateAddr: DenyDecision = { verdict: 'deny', reason: 'denied_private_address', ruleId: null }
  t.equal(applyApprovals(privateAddr, facts('GET', '/a'), index, NOW), privateAddr)
})

t.test('an approval opens a path only if it also opens the path as a decoding server reads it', async (t) => {
  const policy = parseConfigText(
    'groups: { g: { allow: [ { host: h.test, paths: ["/public/**"] } ] } }\nagents: [ { id: ci, source_cidrs: [127.0.0.1/32], groups: [g] } ]\n',
    'a.yaml',
  ).policy
  const index = indexApprovals([approval('path-prefix', 'GET', '/private/x/y')])
  const req = (path: string): RequestFacts => ({
    agent: 'ci',
    method: 'GET',
    scheme: 'https',
    host: 'h.test',
    port: 443,
    path,
    query: '',
  })
  t.match(matchRequestApproved(policy, req('/private/x/z'), index, NOW).decision, {
    verdict: 'allow',
    ruleId: 'approval:A1',
  })
  t.match(
    matchRequestApproved(policy, req('/private/x/..%2F..%2Fadmin'), index, NOW).decision,
    { verdict: 'deny', reason: 'denied_path' },
    'the decoded reading is /admin',
  )
  t.match(
    matchRequestApproved(policy, req('/private/x/a%2Fb'), index, NOW).decision,
    { verdict: 'allow' },
    'both readings under the prefix',
  )
})

t.test(
  'approvalOfRequest: the approval that covers both readings of the path (the package guard asks it)',
  async (t) => {
    const index = indexApprovals([approval('path-prefix', 'GET', '/oldpkg/-/oldpkg-2.0.0.tgz')])
    t.equal(approvalOfRequest(index, facts('GET', '/oldpkg/-/oldpkg-2.0.1.tgz'), NOW)?.id, 'A1')
    t.equal(
      approvalOfRequest(index, facts('GET', '/oldpkg/-/..%2F..%2Fevent-stream/-/event-stream-1.0.0.tgz'), NOW),
      undefined,
      'decoded, another package',
    )
    t.equal(approvalOfRequest(index, facts('GET', '/oldpkg/-/a%2F..;b'), NOW), undefined, 'no single reading')
    t.equal(approvalOfRequest(index, facts('GET', '/oldpkg/-/x%2Fy.tgz'), NOW)?.id, 'A1', 'both readings under it')
    const connect = indexApprovals([approval('exact', 'CONNECT', null)])
    t.equal(approvalOfRequest(connect, facts('CONNECT', null), NOW)?.id, 'A1')
  },
)
