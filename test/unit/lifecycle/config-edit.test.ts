import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { insertRules, type TargetEdit } from '../../../src/lifecycle/config-edit.js'
import { ruleItem } from '../../../src/lifecycle/rule-yaml.js'
import { unifiedDiff } from '../../../src/lifecycle/unified-diff.js'

const TEXT = readFileSync(new URL('../../fixtures/lifecycle/suggest-config.yaml', import.meta.url), 'utf8')
const host = (h: string, comment: string[] = []): TargetEdit['rules'][number] => ({ rule: { host: h }, comment })

/** `before` in a file, `git apply` of unifiedDiff(before, after): the file's text afterwards. */
function gitApplied(t: Test, before: string, after: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-diff-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'config.yaml'), before)
  writeFileSync(join(dir, 'p.diff'), unifiedDiff(before, after, 'config.yaml'))
  execFileSync('git', ['apply', 'p.diff'], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir } })
  return readFileSync(join(dir, 'config.yaml'), 'utf8')
}

t.test('rule items are written in the config’s style', async (t) => {
  t.equal(ruleItem({ host: '*.example.com', ports: [8443] }, 4), '    - host: "*.example.com"\n      ports: [8443]')
  t.equal(
    ruleItem({ github: { repos: ['acme/widgets'], access: 'read' } }, 2, ['why']),
    '  # why\n  - github: { repos: [acme/widgets], access: read }',
  )
  t.equal(ruleItem({ host: 'a.example', paths: ['/a,b/**'] }, 0), '- host: a.example\n  paths: ["/a,b/**"]')
})

// [behaviour, edit, lines expected in the result, in order]
const EDITS: ReadonlyArray<readonly [string, TargetEdit, string[]]> = [
  [
    'appends to a block allow list at its indentation, after the last item',
    { kind: 'group', name: 'builders', rules: [host('new.example.com', ['c'])] },
    ['        methods: [GET, HEAD]', '      # c', '      - host: new.example.com', '    deny:'],
  ],
  [
    'turns `allow: []` into a block list',
    { kind: 'group', name: 'empty', rules: [host('new.example.com')] },
    ['  empty:', '    allow:', '      - host: new.example.com', '    deny: []'],
  ],
  [
    'adds allow to an agent that has none',
    { kind: 'agent', name: 'loner', rules: [host('new.example.com')] },
    [
      '  - id: loner',
      '    token: sha256:0000000000000000000000000000000000000000000000000000000000000004',
      '    allow:',
      '      - host: new.example.com',
    ],
  ],
  [
    'rewrites an inline agent as a block mapping to add allow',
    { kind: 'agent', name: 'inline', rules: [host('new.example.com')] },
    [
      '  - id: inline',
      '    token: "sha256:0000000000000000000000000000000000000000000000000000000000000003"',
      '    groups: [empty]',
      '    allow:',
      '      - host: new.example.com',
      '  - id: loner',
    ],
  ],
]

for (const [name, edit, expected] of EDITS) {
  t.test(name, async (t) => {
    const out = insertRules(TEXT, [edit])
    const lines = out.split('\n')
    const at = lines.indexOf(expected[0] as string)
    t.ok(at >= 0, 'first expected line present')
    t.same(lines.slice(at, at + expected.length), expected)
    const config = parseConfigText(out, 'edited.yaml')
    const rules = edit.kind === 'agent' ? config.policy.rules.get(edit.name) : [config.policy.groups?.get(edit.name)]
    t.ok(
      rules?.some((index) => index?.exact.has('new.example.com')),
      'the new rule is in the compiled policy',
    )
    // Only lines were added (or, for an inline agent, its one line replaced).
    const removed = TEXT.split('\n').filter((l) => !lines.includes(l))
    t.ok(removed.length <= 1, `removed: ${JSON.stringify(removed)}`)
  })
}

t.test('several targets at once', async (t) => {
  const out = insertRules(TEXT, [
    { kind: 'agent', name: 'ci', rules: [host('a.example.org')] },
    { kind: 'group', name: 'builders', rules: [host('b.example.org')] },
  ])
  const config = parseConfigText(out, 'edited.yaml')
  t.ok(config.policy.groups?.get('builders')?.exact.has('b.example.org'))
  t.ok(config.policy.rules.get('ci')?.[0]?.exact.has('a.example.org'))
})

t.test('an inline agents list is written as a block list first, its items kept as written', async (t) => {
  const inline = `# agents on one line
agents: [ { id: ci, token: "sha256:${'0'.repeat(63)}1" }, { id: bot, token: "sha256:${'0'.repeat(63)}2" } ]  # the team
`
  const out = insertRules(inline, [{ kind: 'agent', name: 'bot', rules: [host('new.example.com')] }])
  const config = parseConfigText(out, 'edited.yaml')
  t.ok(
    config.policy.rules.get('bot')?.some((index) => index.exact.has('new.example.com')),
    'the rule is in the policy',
  )
  t.notOk(
    config.policy.rules.get('ci')?.some((index) => index.exact.has('new.example.com')),
    'only for bot',
  )
  t.match(out, /^agents: # the team\n {2}- \{ id: ci, token: "sha256:0+1" \}\n {2}- id: bot\n/m)
  t.match(out, /^# agents on one line$/m, 'comments kept')
})

t.test('a target that is not in the config is an error', async (t) => {
  t.throws(() => insertRules(TEXT, [{ kind: 'agent', name: 'nobody', rules: [host('x.example')] }]), /agent 'nobody'/)
  t.throws(() => insertRules(TEXT, [{ kind: 'group', name: 'nope', rules: [host('x.example')] }]), /group 'nope'/)
  t.equal(insertRules(TEXT, [{ kind: 'group', name: 'nope', rules: [] }]), TEXT, 'no rules, no edit')
})

t.test('the unified diff shows only the additions, and git apply takes it', async (t) => {
  const out = insertRules(TEXT, [{ kind: 'group', name: 'builders', rules: [host('new.example.com', ['c'])] }])
  const diff = unifiedDiff(TEXT, out, 'config/portcullis.yaml')
  t.match(diff, /^--- a\/config\/portcullis\.yaml\n\+\+\+ b\/config\/portcullis\.yaml\n@@ -17,6 \+17,8 @@\n/)
  t.same(
    diff.split('\n').filter((l) => /^[+-][^+-]/.test(l)),
    ['+      # c', '+      - host: new.example.com'],
  )
  t.equal(unifiedDiff(TEXT, TEXT, 'x'), '', 'no change, no diff')
  t.equal(gitApplied(t, TEXT, out), out)
})

t.test('diff hunks: separate changes far apart, one hunk when close', async (t) => {
  const a = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n'
  const b = a.replace('line 2\n', 'line 2\nnew A\n').replace('line 25\n', 'line 25\nnew B\n')
  const diff = unifiedDiff(a, b, 'f')
  t.same(diff.match(/^@@.*@@$/gm), ['@@ -1,6 +1,7 @@', '@@ -24,6 +25,7 @@'])
  const c = a.replace('line 2\n', 'line 2\nnew A\n').replace('line 6\n', 'line 6\nnew B\n')
  t.same(unifiedDiff(a, c, 'f').match(/^@@.*@@$/gm), ['@@ -1,10 +1,12 @@'])
  const d = a.replace('line 0\n', '')
  t.same(unifiedDiff(a, d, 'f').match(/^@@.*@@$/gm), ['@@ -1,4 +1,3 @@'])
})

t.test('a file without a final newline: the rule goes on a line of its own, and the diff applies', async (t) => {
  const bare = TEXT.replace(/\n+$/, '')
  const out = insertRules(bare, [{ kind: 'agent', name: 'loner', rules: [host('new.example.com')] }])
  t.match(out, /token: sha256:0{63}4\n {4}allow:\n {6}- host: new\.example\.com\n$/)
  t.ok(parseConfigText(out, 'edited.yaml').policy.rules.get('loner')?.[0]?.exact.has('new.example.com'))
  t.equal(gitApplied(t, bare, out), out)
})
