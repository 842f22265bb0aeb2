import t, { type Test } from 'tap'
import {
  allOfPackageRules,
  compileAllPackageRules,
  compilePackageRules,
  normalizePypiName,
  type Ecosystem,
  type PackageRules,
  type PackageRulesBlock,
} from '../../../src/packages/rules.js'
import { packageRules, rulesBlock } from '../../helpers/package-rules.js'

const HOUR = 3_600_000
const NOW = Date.parse('2026-03-01T00:00:00Z')

type Case = [name: string, version: string | null, expected: 'ok' | 'denied' | 'not_allowed' | 'too_new']

function check(t: Test, rules: PackageRules, cases: Case[], publishedAtMs: number | null = null): void {
  for (const [name, version, expected] of cases) {
    const v = rules.judge(name, version, publishedAtMs, NOW)
    t.same(v, expected === 'ok' ? { ok: true } : { ok: false, detail: expected }, `${name} ${String(version)}`)
  }
}

t.test('npm deny matches names, scopes and exact versions', async (t) => {
  const rules = packageRules('npm', { deny: ['event-stream', '@evil/*', 'ua-parser-js@0.7.29', '@acme/x@1.0.0'] })
  check(t, rules, [
    ['event-stream', null, 'denied'],
    ['event-stream', '3.3.4', 'denied'],
    ['Event-Stream', '3.3.4', 'denied'], // deny is case-insensitive: fail safe
    ['event-stream-x', null, 'ok'],
    ['@evil/thing', null, 'denied'],
    ['@evil/thing', '9.9.9', 'denied'],
    ['@EVIL/thing', '1.0.0', 'denied'],
    ['@evilx/thing', '1.0.0', 'ok'],
    ['ua-parser-js', null, 'ok'], // a version entry does not deny the package document
    ['ua-parser-js', '0.7.29', 'denied'],
    ['ua-parser-js', '0.7.28', 'ok'],
    ['@acme/x', '1.0.0', 'denied'],
    ['@acme/x', '1.0.1', 'ok'],
  ])
})

t.test('npm version entries are compared as semver (a leading v is the same version)', async (t) => {
  const rules = packageRules('npm', { deny: ['left-pad@v1.3.0'] })
  check(t, rules, [
    ['left-pad', '1.3.0', 'denied'],
    ['left-pad', 'v1.3.0', 'denied'],
    ['left-pad', '1.3.0-rc.1', 'ok'],
  ])
})

t.test('allow list admits only listed packages, scopes and versions', async (t) => {
  const rules = packageRules('npm', { allow: ['lodash', '@acme/*', 'react@18.2.0', 'react@18.3.1', 'JSONStream'] })
  check(t, rules, [
    ['lodash', null, 'ok'],
    ['lodash', '4.17.21', 'ok'],
    ['@acme/widgets', '1.0.0', 'ok'],
    ['@other/widgets', null, 'not_allowed'],
    ['express', null, 'not_allowed'],
    ['express', '4.0.0', 'not_allowed'],
    ['react', null, 'ok'], // the package document is reachable; only listed versions survive
    ['react', '18.2.0', 'ok'],
    ['react', '18.3.1', 'ok'],
    ['react', '19.0.0', 'not_allowed'],
    ['JSONStream', '1.3.5', 'ok'],
    ['jsonstream', '1.3.5', 'not_allowed'], // allow loosens, so it matches exactly
  ])
})

t.test('deny beats allow', async (t) => {
  const rules = packageRules('npm', { allow: ['lodash', '@acme/*'], deny: ['lodash@4.17.20', '@acme/bad'] })
  check(t, rules, [
    ['lodash', '4.17.21', 'ok'],
    ['lodash', '4.17.20', 'denied'],
    ['@acme/bad', null, 'denied'],
    ['@acme/good', null, 'ok'],
  ])
})

t.test('min_age withholds young versions, exactly at the boundary it is old enough', async (t) => {
  const rules = packageRules('npm', { minAgeMs: 72 * HOUR })
  const at = (ms: number) => rules.judge('lodash', '1.0.0', ms, NOW)
  t.same(at(NOW - 72 * HOUR), { ok: true })
  t.same(at(NOW - 72 * HOUR + 1), { ok: false, detail: 'too_new' })
  t.same(at(NOW - 1000 * HOUR), { ok: true })
  t.same(at(NOW + HOUR), { ok: false, detail: 'too_new' }, 'a publish time in the future is too new')
  t.same(rules.judge('lodash', null, null, NOW), { ok: true }, 'the package document has no age')
})

t.test('an unknown publish time under min_age fails closed', async (t) => {
  const rules = packageRules('npm', { minAgeMs: HOUR })
  t.same(rules.judge('lodash', '1.0.0', null, NOW), { ok: false, detail: 'too_new' })
  t.same(rules.judge('lodash', '1.0.0', Number.NaN, NOW), { ok: false, detail: 'too_new' })
  const noAge = packageRules('npm', {})
  t.same(noAge.judge('lodash', '1.0.0', null, NOW), { ok: true }, 'without min_age the time is not needed')
})

t.test('min_age_exempt skips only min_age: by scope, by name and by version', async (t) => {
  const rules = packageRules('npm', {
    minAgeMs: 72 * HOUR,
    minAgeExempt: ['@acme/*', 'typescript', 'react@19.0.1'],
    deny: ['@acme/evil'],
  })
  const young = NOW - HOUR
  check(
    t,
    rules,
    [
      ['@acme/widgets', '1.0.0', 'ok'],
      ['typescript', '5.9.0', 'ok'],
      ['react', '19.0.1', 'ok'],
      ['react', '19.0.2', 'too_new'],
      ['lodash', '4.0.0', 'too_new'],
      ['@acme/evil', '1.0.0', 'denied'], // exemption does not lift a deny
    ],
    young,
  )
  t.equal(rules.needsPublishTimes('@acme/widgets'), false)
  t.equal(rules.needsPublishTimes('typescript'), false)
  t.equal(rules.needsPublishTimes('react'), true, 'a version exemption still needs the other times')
  t.equal(rules.needsPublishTimes('lodash'), true)
})

t.test('needsPublishTimes and filtersVersions say when a document must be inspected', async (t) => {
  const none = packageRules('npm', {})
  t.equal(none.needsPublishTimes('lodash'), false)
  t.equal(none.filtersVersions('lodash'), false)
  const versioned = packageRules('npm', { deny: ['lodash@4.17.20'], allow: ['lodash', 'react@18.2.0'] })
  t.equal(versioned.needsPublishTimes('lodash'), false)
  t.equal(versioned.filtersVersions('lodash'), true, 'a version deny entry')
  t.equal(versioned.filtersVersions('react'), true, 'an allow list naming versions')
  const zero = packageRules('npm', { minAgeMs: 0 })
  t.equal(zero.needsPublishTimes('lodash'), false, 'min_age 0 is no min_age')
  t.same(zero.judge('lodash', '1.0.0', null, NOW), { ok: true })
})

t.test('admits applies deny and allow without age', async (t) => {
  const rules = packageRules('pypi', { minAgeMs: HOUR, deny: ['requests==2.0.0'], allow: ['requests', 'flask'] })
  t.same(rules.admits('requests', '2.0.0'), { ok: false, detail: 'denied' })
  t.same(rules.admits('requests', '2.1.0'), { ok: true })
  t.same(rules.admits('django', null), { ok: false, detail: 'not_allowed' })
})

t.test('PyPI names are compared after PEP 503 normalisation', async (t) => {
  t.equal(normalizePypiName('Friendly-Bard'), 'friendly-bard')
  t.equal(normalizePypiName('FRIENDLY_BARD'), 'friendly-bard')
  t.equal(normalizePypiName('friendly.bard'), 'friendly-bard')
  t.equal(normalizePypiName('Friendly._-Bard'), 'friendly-bard')
  const rules = packageRules('pypi', { deny: ['Friendly_Bard', 'requestz==1.0', 'colourama@0.4.6'] })
  check(t, rules, [
    ['friendly-bard', null, 'denied'],
    ['FRIENDLY.bard', '1.0', 'denied'],
    ['friendlybard', null, 'ok'],
    ['requestz', '1.0', 'denied'],
    ['RequestZ', '1.0', 'denied'],
    ['requestz', '1.0.1', 'ok'],
    ['colourama', '0.4.6', 'denied'],
  ])
})

t.test('deny file lines: comments and blanks are skipped, entries are denied', async (t) => {
  const rules = packageRules('npm', {
    denyFileLines: ['# malicious packages', '', '  event-stream@3.3.6  # flatmap-stream', '@evil/*', '\t'],
  })
  check(t, rules, [
    ['event-stream', '3.3.6', 'denied'],
    ['event-stream', '3.3.5', 'ok'],
    ['@evil/x', null, 'denied'],
  ])
})

t.test('bad entries are compile errors naming the list, index, column and problem', async (t) => {
  const cases: [Ecosystem, Partial<PackageRulesBlock>, object[]][] = [
    ['npm', { deny: ['*'] }, [{ list: 'deny', index: 0, problem: 'match_everything' }]],
    ['npm', { deny: ['@*/*'] }, [{ list: 'deny', index: 0, problem: 'match_everything' }]],
    ['npm', { deny: ['ok', '@evil'] }, [{ list: 'deny', index: 1, problem: 'bad_scope' }]],
    ['npm', { deny: ['@ev il/*'] }, [{ list: 'deny', index: 0, problem: 'bad_scope' }]],
    ['npm', { deny: ['lodash@^4.0.0'] }, [{ list: 'deny', index: 0, problem: 'bad_version' }]],
    ['npm', { deny: ['lodash@'] }, [{ list: 'deny', index: 0, problem: 'bad_version' }]],
    ['npm', { deny: ['.hidden'] }, [{ list: 'deny', index: 0, problem: 'bad_name' }]],
    ['npm', { deny: ['a/b'] }, [{ list: 'deny', index: 0, problem: 'bad_name' }]],
    ['npm', { deny: [''] }, [{ list: 'deny', index: 0, problem: 'empty' }]],
    ['npm', { allow: ['ok', 'no space'] }, [{ list: 'allow', index: 1, problem: 'bad_name' }]],
    ['npm', { minAgeExempt: ['@acme/'] }, [{ list: 'min_age_exempt', index: 0, problem: 'bad_name' }]],
    ['pypi', { deny: ['@evil/*'] }, [{ list: 'deny', index: 0, problem: 'scope_not_supported' }]],
    ['pypi', { deny: ['requests>=2'] }, [{ list: 'deny', index: 0, problem: 'bad_name' }]],
    ['pypi', { deny: ['requests==latest'] }, [{ list: 'deny', index: 0, problem: 'bad_version' }]],
    ['pypi', { deny: ['-bad'] }, [{ list: 'deny', index: 0, problem: 'bad_name' }]],
    ['npm', { minAgeMs: -1 }, [{ list: 'min_age', problem: 'bad_min_age' }]],
    [
      'npm',
      { denyFileLines: ['good', '   bad name # comment', 'x@1'] },
      [
        { list: 'deny_file', index: 1, column: 4, entry: 'bad name', problem: 'bad_name' },
        { list: 'deny_file', index: 2, column: 1, entry: 'x@1', problem: 'bad_version' },
      ],
    ],
  ]
  for (const [eco, over, errors] of cases) {
    const r = compilePackageRules(eco, rulesBlock(over))
    t.equal(r.ok, false, JSON.stringify(over))
    if (!r.ok) t.match(r.errors, errors, JSON.stringify(over))
    if (!r.ok) t.equal(r.errors.length, errors.length, JSON.stringify(over))
  }
})

t.test('compiled rules keep their block for a worker to compile again', async (t) => {
  const b = rulesBlock({ deny: ['x'], minAgeMs: 5 })
  const r = compilePackageRules('npm', b)
  t.ok(r.ok)
  if (r.ok) t.same(r.rules.blocks, [b])
  if (r.ok) t.equal(r.rules.ecosystem, 'npm')
})

t.test('several blocks as one: a version passes only if every block passes it', async (t) => {
  const now = Date.UTC(2024, 0, 10)
  const hour = 3600_000
  const a = packageRules('npm', { deny: ['evil'], minAgeMs: 2 * hour, minAgeExempt: ['@acme/*', 'both'] })
  const b = packageRules('npm', { denyFileLines: ['bad@1.0.0'], allow: ['evil', 'good', 'both', '@acme/*', 'bad'] })
  const c = packageRules('npm', { minAgeMs: 72 * hour, minAgeExempt: ['both'] })
  const all = allOfPackageRules([a, b, c])
  t.same(all.blocks, [...a.blocks, ...b.blocks, ...c.blocks], 'the blocks travel to a worker in rule order')
  t.match(all.admits('evil', null), { ok: false, detail: 'denied' }, "one block's deny beats another's allow")
  t.match(all.admits('bad', '1.0.0'), { ok: false, detail: 'denied' }, "one block's deny file counts")
  t.match(all.admits('other', null), { ok: false, detail: 'not_allowed' }, 'an allow list that is set holds')
  t.ok(all.admits('good', null).ok)
  t.match(all.judge('good', '1.0.0', now - 10 * hour, now), { ok: false, detail: 'too_new' }, 'the largest min_age')
  t.ok(all.judge('good', '1.0.0', now - 73 * hour, now).ok)
  t.match(
    all.judge('@acme/x', '1.0.0', now - hour, now),
    { ok: false, detail: 'too_new' },
    "exempt from one block's min_age, still held to another's",
  )
  t.ok(all.judge('both', '1.0.0', now - hour, now).ok, 'exempt where every block with a min_age exempts it')
  t.equal(all.minAgeMsOf('good', '1.0.0'), 72 * hour)
  t.equal(all.minAgeMsOf('both', '1.0.0'), null)
  t.ok(all.needsPublishTimes('good'))
  t.notOk(all.needsPublishTimes('both'))
  t.ok(all.filtersVersions('good'), "b's allow list and c's min_age filter")
  t.equal(allOfPackageRules([a]), a, 'one block is itself')
  const again = compileAllPackageRules('npm', all.blocks)
  t.ok(again.ok)
  if (again.ok) t.match(again.rules.admits('evil', null), { ok: false, detail: 'denied' }, 'a worker compiles the same')
})
