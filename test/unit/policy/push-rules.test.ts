import t from 'tap'
import type { PushControl } from '../../../src/policy/compiled.js'
import { branchAllowed, checkPushCommand, explainPushRefusal } from '../../../src/policy/push-rules.js'

const Z = '0'.repeat(40)
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const PUSH: PushControl = {
  branches: ['agent/{agent}/**'],
  force: false,
  delete: false,
  tags: false,
  maxPackBytes: 100 * 1024 * 1024,
}

const CASES: ReadonlyArray<readonly [string, string, string, string, Partial<PushControl>, object]> = [
  ['creating an own branch needs no proof', Z, A, 'refs/heads/agent/ci-42/fix', {}, { ok: true, needsProof: false }],
  [
    'updating an own branch needs a fast-forward proof',
    A,
    B,
    'refs/heads/agent/ci-42/fix',
    {},
    { ok: true, needsProof: true },
  ],
  [
    'with force, an update needs no proof',
    A,
    B,
    'refs/heads/agent/ci-42/fix',
    { force: true },
    { ok: true, needsProof: false },
  ],
  ['main is not an allowed branch', A, B, 'refs/heads/main', {}, { ok: false, detail: 'ref_not_allowed' }],
  [
    'another agent’s branch is not allowed',
    Z,
    A,
    'refs/heads/agent/other/fix',
    {},
    { ok: false, detail: 'ref_not_allowed' },
  ],
  [
    'the agent prefix alone is not a branch under it',
    Z,
    A,
    'refs/heads/agent/ci-42',
    {},
    { ok: false, detail: 'ref_not_allowed' },
  ],
  ['deleting needs push.delete', A, Z, 'refs/heads/agent/ci-42/fix', {}, { ok: false, detail: 'delete' }],
  [
    'with delete, an own branch may be deleted',
    A,
    Z,
    'refs/heads/agent/ci-42/fix',
    { delete: true },
    { ok: true, needsProof: false },
  ],
  [
    'deleting main is refused even with delete',
    A,
    Z,
    'refs/heads/main',
    { delete: true },
    { ok: false, detail: 'ref_not_allowed' },
  ],
  ['a tag needs push.tags', Z, A, 'refs/tags/v1', {}, { ok: false, detail: 'tag' }],
  ['with tags, a tag may be pushed', Z, A, 'refs/tags/v1', { tags: true }, { ok: true, needsProof: false }],
  [
    'other namespaces never',
    Z,
    A,
    'refs/notes/commits',
    { tags: true, force: true, delete: true },
    { ok: false, detail: 'ref_not_allowed' },
  ],
  ['pull refs never', Z, A, 'refs/pull/1/head', {}, { ok: false, detail: 'ref_not_allowed' }],
]

for (const [behaviour, old, neu, ref, over, expected] of CASES) {
  t.test(behaviour, async (t) => {
    t.match(checkPushCommand({ old, new: neu, ref }, { ...PUSH, ...over }, 'ci-42'), expected)
  })
}

t.test('branch patterns: {agent}, * within a segment, ** across', async (t) => {
  const p = { ...PUSH, branches: ['agent/{agent}/**', 'feature-*', 'team/*/wip'] }
  t.ok(branchAllowed(p, 'ci-42', 'agent/ci-42/a/b/c'))
  t.ok(branchAllowed(p, 'ci-42', 'feature-login'))
  t.notOk(branchAllowed(p, 'ci-42', 'feature-x/y'))
  t.ok(branchAllowed(p, 'ci-42', 'team/red/wip'))
  t.notOk(branchAllowed(p, 'ci-42', 'team/red/blue/wip'))
})

t.test('each refusal explains what is allowed instead', async (t) => {
  t.match(
    explainPushRefusal('ref_not_allowed', PUSH, 'ci-42'),
    'may push only to agent/ci-42/**; push there and open a pull request',
  )
  t.match(explainPushRefusal('pack_too_large', PUSH, 'ci-42'), /larger than 100 MiB/)
  t.match(explainPushRefusal('not_fast_forward', PUSH, 'ci-42'), /rewrite history/)
})
