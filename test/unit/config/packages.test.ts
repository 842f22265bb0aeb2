import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig, parseConfigText } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'
import { listRules, needsInside } from '../../../src/policy/compiled.js'

const agentBlock = `agents:
  - { id: a, source_cidrs: [127.0.0.1/32], groups: [g] }
`

const rulesOf = (cfg: ReturnType<typeof parseConfigText>) =>
  (cfg.policy.rules.get('a') ?? []).flatMap((index) => listRules(index))

function problems(text: string, files: Map<string, string | null> = new Map()): string[] {
  try {
    parseConfigText(text, 't.yaml', {}, files)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`)
    throw err
  }
  return []
}

t.test('a packages block on the npm preset guards every rule of the preset, and needs interception', async (t) => {
  const cfg = parseConfigText(
    `groups:
  g:
    allow:
      - preset: npm
        packages: { min_age: 72h, deny: ["event-stream", "@evil/*"], min_age_exempt: ["@acme/*"] }
${agentBlock}`,
    't.yaml',
  )
  const rules = rulesOf(cfg)
  t.ok(rules.length >= 2, 'the read-only rule and the audit POST rule')
  for (const r of rules) {
    t.equal(r.packages?.ecosystem, 'npm')
    t.ok(needsInside(r))
    t.equal(r.packages?.rules.admits('event-stream', null).ok, false)
    t.equal(r.packages?.rules.admits('@evil/thing', '1.0.0').ok, false)
    t.equal(r.packages?.rules.needsPublishTimes('@acme/x'), false)
  }
})

t.test('pypi preset: files are judged with pypi.org upload times; a host rule names its registry', async (t) => {
  const cfg = parseConfigText(
    `groups:
  g:
    allow:
      - preset: pypi
        packages: { min_age: 3d }
      - host: npm.internal.example
        packages: { registry: npm, deny: [left-pad] }
${agentBlock}`,
    't.yaml',
  )
  const all = rulesOf(cfg)
  const files = all.find((r) => r.host.kind === 'exact' && r.host.host === 'files.pythonhosted.org')
  t.equal(files?.packages?.indexHost, 'pypi.org')
  const internal = all.find((r) => r.host.kind === 'exact' && r.host.host === 'npm.internal.example')
  t.equal(internal?.packages?.ecosystem, 'npm')
  t.equal(internal?.packages?.indexHost, 'npm.internal.example')
})

t.test('bad entries are reported where they are, deny-file lines by line', async (t) => {
  const found = problems(
    `groups:
  g:
    allow:
      - preset: npm
        packages: { deny: ["ok-name", "Bad Name!"], deny_file: deny.txt }
      - preset: crates
        packages: { deny: [x] }
${agentBlock}`,
    new Map([['deny.txt', '# comment\nfine\n  @@nope\n']]),
  )
  t.match(found.join('\n'), /packages\.deny\[1\].*'Bad Name!' is not a package entry for npm/)
  t.match(found.join('\n'), /deny\.txt:3:3: '@@nope'/)
  t.match(found.join('\n'), /'packages' applies to the npm and pypi presets/)
})

t.test('a deny_file that cannot be read is a config error; loadConfig reads it from disk', async (t) => {
  t.match(
    problems(
      `groups:\n  g:\n    allow:\n      - preset: npm\n        packages: { deny_file: missing.txt }\n${agentBlock}`,
    ),
    [/cannot read deny_file missing.txt/],
  )
  const dir = mkdtempSync(join(tmpdir(), 'pc-pkg-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const deny = join(dir, 'deny.txt')
  writeFileSync(deny, 'evil\n')
  const file = join(dir, 'p.yaml')
  writeFileSync(
    file,
    `groups:\n  g:\n    allow:\n      - preset: npm\n        packages: { deny_file: ${JSON.stringify(deny)} }\n${agentBlock}`,
  )
  const cfg = await loadConfig(file)
  const rule = rulesOf(cfg)[0]
  t.equal(rule?.packages?.rules.admits('evil', null).ok, false)
  t.equal(rule?.packages?.rules.admits('good', null).ok, true)
})
