import t from 'tap'
import {
  ABBREVIATED_VERSION_FIELDS,
  publishTimes,
  rewritePackument,
  selectVersionDoc,
  toAbbreviated,
  type JsonObject,
} from '../../../src/packages/npm-packument.js'
import type { PackageRules, PackageRulesBlock } from '../../../src/packages/rules.js'
import { packageRules } from '../../helpers/package-rules.js'

const HOUR = 3_600_000
const NOW = Date.parse('2026-03-01T00:00:00Z')
const OLD = new Date(NOW - 1000 * HOUR).toISOString()
const NEW = new Date(NOW - HOUR).toISOString()

const rules = (over: Partial<PackageRulesBlock> = {}): PackageRules =>
  packageRules('npm', { minAgeMs: 72 * HOUR, ...over })

/** A full packument: `versions` maps each version to its publish time (null: no time entry). */
function packument(name: string, versions: Record<string, string | null>, tags: Record<string, string>): JsonObject {
  const time: JsonObject = { created: '2015-01-01T00:00:00.000Z', modified: NEW }
  const docs: JsonObject = {}
  for (const [v, at] of Object.entries(versions)) {
    docs[v] = { name, version: v, dist: { tarball: `https://registry.npmjs.org/${name}/-/${name}-${v}.tgz` } }
    if (at !== null) time[v] = at
  }
  return { _id: name, name, 'dist-tags': tags, versions: docs, time, readme: 'hello' }
}

const rewrite = (doc: unknown, r: PackageRules = rules(), name = 'pkg') =>
  rewritePackument(doc, { name, rules: r, nowMs: NOW })

t.test('nothing withheld: the document itself comes back', async (t) => {
  const doc = packument('pkg', { '1.0.0': OLD }, { latest: '1.0.0' })
  const r = rewrite(doc)
  t.equal(r.kind, 'rewritten')
  if (r.kind === 'rewritten') {
    t.equal(r.doc, doc)
    t.same(r.withheld, [])
  }
})

t.test('young versions leave versions and time; latest moves to the newest older stable', async (t) => {
  const doc = packument('pkg', { '1.0.0': OLD, '1.1.0': OLD, '1.2.0': NEW }, { latest: '1.2.0' })
  const before = structuredClone(doc)
  const r = rewrite(doc)
  t.same(doc, before, 'the input is not mutated')
  t.equal(r.kind, 'rewritten')
  if (r.kind !== 'rewritten') return
  t.same(r.withheld, ['1.2.0'])
  t.same(Object.keys(r.doc.versions as object), ['1.0.0', '1.1.0'])
  t.same(r.doc.time, { created: '2015-01-01T00:00:00.000Z', modified: NEW, '1.0.0': OLD, '1.1.0': OLD })
  t.same(r.doc['dist-tags'], { latest: '1.1.0' })
  t.same(r.tagsMoved, { latest: { from: '1.2.0', to: '1.1.0' } })
  t.equal(r.doc.readme, 'hello', 'other fields are kept')
})

t.test('dist-tag moves', async (t) => {
  type Case = [name: string, versions: Record<string, string>, tags: object, want: object, dropped?: string[]]
  const cases: Case[] = [
    [
      'a stable tag never becomes a prerelease, even a higher one',
      { '1.0.0': OLD, '1.1.0-beta.1': OLD, '1.1.0': NEW },
      { latest: '1.1.0' },
      { latest: '1.0.0' },
    ],
    [
      'a prerelease tag moves to the newest remaining prerelease below it',
      { '1.0.0': OLD, '2.0.0-rc.1': OLD, '2.0.0-rc.2': NEW },
      { latest: '1.0.0', next: '2.0.0-rc.2' },
      { latest: '1.0.0', next: '2.0.0-rc.1' },
    ],
    [
      'a prerelease tag with no prerelease left is dropped: it never becomes a stable either',
      { '1.0.0': OLD, '1.5.0': OLD, '2.0.0-rc.1': NEW },
      { latest: '1.0.0', next: '2.0.0-rc.1' },
      { latest: '1.0.0' },
      ['next'],
    ],
    [
      'a tag moves below its version, never forward to one its maintainers did not tag',
      { '1.0.0': OLD, '2.0.0': NEW, '3.0.0': OLD },
      { latest: '2.0.0' },
      { latest: '1.0.0' },
    ],
    [
      'latest with nothing below takes the lowest-risk stable above rather than vanish',
      { '2.0.0': NEW, '3.0.0': OLD },
      { latest: '2.0.0' },
      { latest: '3.0.0' },
    ],
    [
      'a tag other than latest with no candidate is dropped',
      { '1.0.0': OLD, '0.0.1-canary.1': NEW },
      { latest: '1.0.0', canary: '0.0.1-canary.1' },
      { latest: '1.0.0' },
      ['canary'],
    ],
    [
      'a prerelease latest (a package with only prereleases) moves to an older prerelease',
      { '0.1.0-alpha.1': OLD, '0.1.0-alpha.2': NEW },
      { latest: '0.1.0-alpha.2' },
      { latest: '0.1.0-alpha.1' },
    ],
    [
      'tags that point at kept versions, or at nothing known, are left alone',
      { '1.0.0': OLD, '1.1.0': NEW },
      { latest: '1.1.0', old: '1.0.0', ghost: '9.9.9' },
      { latest: '1.0.0', old: '1.0.0', ghost: '9.9.9' },
    ],
    [
      'semver order, not key order, picks the newest (1.10.0 above 1.9.0)',
      { '1.10.0': OLD, '1.9.0': OLD, '1.11.0': NEW },
      { latest: '1.11.0' },
      { latest: '1.10.0' },
    ],
  ]
  for (const [name, versions, tags, want, dropped = []] of cases) {
    const r = rewrite(packument('pkg', versions, tags as Record<string, string>))
    t.equal(r.kind, 'rewritten', name)
    if (r.kind !== 'rewritten') continue
    t.same(r.doc['dist-tags'], want, name)
    t.same(r.tagsDropped, dropped, name)
  }
})

t.test('every version withheld: withheld_all, with the reason that will change first', async (t) => {
  const doc = packument('pkg', { '1.0.0': NEW, '1.1.0': NEW }, { latest: '1.1.0' })
  t.same(rewrite(doc), {
    kind: 'withheld_all',
    detail: 'too_new',
    why: 'no_version_left',
    withheld: ['1.0.0', '1.1.0'],
  })
  const mixed = rewrite(doc, rules({ deny: ['pkg@1.0.0'] }))
  t.match(mixed, { kind: 'withheld_all', detail: 'too_new' })
  const denied = rewrite(doc, rules({ deny: ['pkg@1.0.0', 'pkg@1.1.0'], minAgeMs: null }))
  t.match(denied, { kind: 'withheld_all', detail: 'denied', why: 'no_version_left' })
})

t.test('a denied or not-allowed package is withheld whole with that detail', async (t) => {
  const doc = packument('@evil/x', { '1.0.0': OLD }, { latest: '1.0.0' })
  t.match(rewrite(doc, rules({ deny: ['@evil/*'] }), '@evil/x'), { kind: 'withheld_all', detail: 'denied' })
  t.match(rewrite(doc, rules({ allow: ['lodash'] }), '@evil/x'), { kind: 'withheld_all', detail: 'not_allowed' })
})

t.test('a stable latest with only prereleases left is withheld_all (no_stable_left)', async (t) => {
  const doc = packument('pkg', { '1.0.0-beta.1': OLD, '1.0.0': NEW }, { latest: '1.0.0', beta: '1.0.0-beta.1' })
  t.same(rewrite(doc), { kind: 'withheld_all', detail: 'too_new', why: 'no_stable_left', withheld: ['1.0.0'] })
})

t.test('unknown publish times: withheld, unless the document was last modified long enough ago', async (t) => {
  const doc = packument('pkg', { '1.0.0': OLD, '1.1.0': null }, { latest: '1.0.0' })
  t.match(rewrite(doc), { kind: 'rewritten', withheld: ['1.1.0'] })
  const oldDoc = { ...doc, time: { ...(doc.time as object), modified: OLD } }
  t.match(rewrite(oldDoc), { kind: 'rewritten', withheld: [] })
  const noTime: JsonObject = { ...doc }
  delete noTime.time
  t.match(rewrite(noTime), { kind: 'withheld_all', why: 'no_version_left' }, 'no time at all: nothing can be shown old')
})

t.test('deny by version works on an abbreviated document, which has no time', async (t) => {
  const full = packument('@scope/pkg', { '1.0.0': OLD, '1.0.1': OLD }, { latest: '1.0.1' })
  const abbreviated = toAbbreviated(full)
  t.notOk('time' in abbreviated)
  const r = rewrite(abbreviated, rules({ deny: ['@scope/pkg@1.0.1'], minAgeMs: null }), '@scope/pkg')
  t.match(r, { kind: 'rewritten', withheld: ['1.0.1'], tagsMoved: { latest: { from: '1.0.1', to: '1.0.0' } } })
  if (r.kind === 'rewritten') t.notOk('time' in r.doc, 'no time is invented')
})

t.test('exempt scopes skip min_age in the document too', async (t) => {
  const doc = packument('@acme/lib', { '1.0.0': OLD, '1.1.0': NEW }, { latest: '1.1.0' })
  const r = rewrite(doc, rules({ minAgeExempt: ['@acme/*'] }), '@acme/lib')
  t.match(r, { kind: 'rewritten', withheld: [] })
})

t.test('the name judged is the one from the request, not the document', async (t) => {
  const doc = packument('innocent', { '1.0.0': OLD }, { latest: '1.0.0' })
  t.match(rewrite(doc, rules({ deny: ['evil'] }), 'evil'), { kind: 'withheld_all', detail: 'denied' })
})

t.test('hostile keys such as __proto__ stay data', async (t) => {
  const text = `{"name":"pkg","dist-tags":{"latest":"2.0.0","__proto__":"2.0.0"},
    "versions":{"1.0.0":{"version":"1.0.0"},"__proto__":{"polluted":true},"2.0.0":{"version":"2.0.0"}},
    "time":{"1.0.0":"${OLD}","__proto__":"${OLD}","2.0.0":"${NEW}"}}`
  const r = rewrite(JSON.parse(text))
  t.equal(r.kind, 'rewritten')
  if (r.kind !== 'rewritten') return
  const versions = r.doc.versions as JsonObject
  t.equal(Object.getPrototypeOf(versions), Object.prototype)
  t.same(Object.keys(versions), ['1.0.0', '__proto__'])
  const tags = r.doc['dist-tags'] as JsonObject
  t.equal(Object.getPrototypeOf(tags), Object.prototype)
  t.same(Object.keys(tags), ['latest', '__proto__'])
  t.equal(({} as JsonObject).polluted, undefined)
})

t.test('malformed documents are invalid, not rewritten', async (t) => {
  const cases: [unknown, string][] = [
    [null, 'not_object'],
    [[], 'not_object'],
    ['x', 'not_object'],
    [{ versions: [] }, 'bad_versions'],
    [{ versions: {}, 'dist-tags': 'latest' }, 'bad_dist_tags'],
    [{ versions: {}, time: 5 }, 'bad_time'],
  ]
  for (const [doc, problem] of cases) t.same(rewrite(doc), { kind: 'invalid', problem }, JSON.stringify(doc))
  t.match(rewrite({ name: 'pkg' }), { kind: 'rewritten', withheld: [] }, 'an unpublished package has no versions')
})

t.test('publishTimes: own time, else the document modification as an upper bound', async (t) => {
  const doc = packument('pkg', { '1.0.0': OLD, '1.1.0': null, '1.2.0': 'garbage' }, { latest: '1.0.0' })
  t.same(
    [...publishTimes(doc)],
    [
      ['1.0.0', Date.parse(OLD)],
      ['1.1.0', Date.parse(NEW)],
      ['1.2.0', Date.parse(NEW)],
    ],
  )
  const abbreviated = { name: 'pkg', modified: OLD, versions: { '1.0.0': {} } }
  t.same([...publishTimes(abbreviated)], [['1.0.0', Date.parse(OLD)]])
  t.same([...publishTimes({ versions: { '1.0.0': {} } })], [])
})

t.test('toAbbreviated keeps only the install fields', async (t) => {
  const manifest = {
    name: 'pkg',
    version: '1.0.0',
    description: 'dropped',
    readme: 'dropped',
    scripts: { postinstall: 'node x.js', test: 'tap' },
    _npmUser: { name: 'dropped' },
    maintainers: [],
    dependencies: { a: '^1' },
    optionalDependencies: { b: '^1' },
    devDependencies: { c: '^1' },
    peerDependencies: { d: '^1' },
    peerDependenciesMeta: { d: { optional: true } },
    bundleDependencies: ['a'],
    bin: { pkg: 'bin.js' },
    directories: {},
    dist: { tarball: 'https://registry.npmjs.org/pkg/-/pkg-1.0.0.tgz', integrity: 'sha512-x', shasum: 'ab' },
    engines: { node: '>=20' },
    cpu: ['x64'],
    os: ['linux'],
    libc: ['glibc'],
    deprecated: 'use other',
    funding: 'https://example.com',
    _hasShrinkwrap: false,
  }
  const full = {
    name: 'pkg',
    'dist-tags': { latest: '1.0.0' },
    versions: { '1.0.0': manifest },
    time: { created: OLD, modified: NEW, '1.0.0': OLD },
    readme: 'r',
    users: {},
  }
  const a = toAbbreviated(full)
  t.same(Object.keys(a), ['name', 'modified', 'dist-tags', 'versions'])
  t.equal(a.modified, NEW)
  const v = (a.versions as Record<string, JsonObject>)['1.0.0'] as JsonObject
  t.notOk('description' in v)
  t.notOk('readme' in v)
  t.notOk('scripts' in v)
  t.notOk('_npmUser' in v)
  t.notOk('maintainers' in v)
  t.equal(v.hasInstallScript, true, 'derived from scripts')
  for (const key of Object.keys(v)) t.ok(ABBREVIATED_VERSION_FIELDS.includes(key), key)
  t.same(v.dist, manifest.dist)
  t.same(v.peerDependenciesMeta, manifest.peerDependenciesMeta)
  const noScript = toAbbreviated({ ...full, versions: { '1.0.0': { ...manifest, scripts: { test: 'x' } } } })
  t.notOk('hasInstallScript' in ((noScript.versions as JsonObject)['1.0.0'] as JsonObject))
  const declared = toAbbreviated({ ...full, versions: { '1.0.0': { ...manifest, hasInstallScript: false } } })
  t.equal(((declared.versions as JsonObject)['1.0.0'] as JsonObject).hasInstallScript, false, 'a declared value wins')
})

t.test('selectVersionDoc resolves a tag or an exact version among what is left', async (t) => {
  const doc = packument('pkg', { '1.0.0': OLD, '1.1.0': NEW }, { latest: '1.1.0', stable: '1.0.0' })
  const r = rewrite(doc)
  if (r.kind !== 'rewritten') throw new Error('expected rewritten')
  t.match(selectVersionDoc(r.doc, 'latest'), { version: '1.0.0' })
  t.match(selectVersionDoc(r.doc, 'stable'), { version: '1.0.0' })
  t.match(selectVersionDoc(r.doc, '1.0.0'), { version: '1.0.0' })
  t.equal(selectVersionDoc(r.doc, '1.1.0'), null)
  t.equal(selectVersionDoc(r.doc, 'nope'), null)
  t.equal(selectVersionDoc(r.doc, 'constructor'), null)
})

t.test('a generated packument with thousands of versions is filtered correctly', async (t) => {
  const versions: Record<string, string> = {}
  const count = 6000
  for (let i = 0; i < count; i++) {
    const v = i % 10 === 9 ? `${Math.floor(i / 100)}.${i % 100}.0-beta.${i}` : `${Math.floor(i / 100)}.${i % 100}.0`
    versions[v] = new Date(NOW - (count - i) * HOUR + 1).toISOString() // the last 72 are younger than 72h
  }
  const keys = Object.keys(versions)
  const stable = keys.filter((k) => !k.includes('-'))
  const doc = packument('big', versions, {
    latest: stable[stable.length - 1] as string,
    beta: keys[keys.length - 1] as string,
  })
  const r = rewrite(doc, rules(), 'big')
  t.equal(r.kind, 'rewritten')
  if (r.kind !== 'rewritten') return
  t.equal(r.withheld.length, 72)
  t.same(r.withheld, keys.slice(-72))
  const left = keys.slice(0, -72)
  const leftStable = left.filter((k) => !k.includes('-'))
  t.same(r.doc['dist-tags'], {
    latest: leftStable[leftStable.length - 1],
    beta: left.filter((k) => k.includes('-')).pop(),
  })
  t.equal(Object.keys(r.doc.versions as object).length, count - 72)
})
