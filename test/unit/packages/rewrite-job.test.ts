import t from 'tap'
import { readFileSync } from 'node:fs'
import { MAX_DOCUMENT_BYTES, runRewriteJob, type RewriteOutcome } from '../../../src/packages/rewrite-job.js'
import { createPackumentPool } from '../../../src/packages/packument-pool.js'
import { allOfPackageRules, type Ecosystem, type PackageRules } from '../../../src/packages/rules.js'
import { packageRules } from '../../helpers/package-rules.js'

const HOUR = 3_600_000
const NOW = Date.parse('2026-03-01T00:00:00Z')
const OLD = new Date(NOW - 1000 * HOUR).toISOString()
const NEW = new Date(NOW - HOUR).toISOString()
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
const dec = (b: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(b))

const rules = (ecosystem: Ecosystem, deny: string[] = []): PackageRules =>
  packageRules(ecosystem, { deny, minAgeMs: 72 * HOUR })

const NPM = rules('npm')
const PYPI = rules('pypi')

function doc(newVersion = true) {
  return {
    name: 'pkg',
    'dist-tags': { latest: newVersion ? '1.1.0' : '1.0.0' },
    versions: {
      '1.0.0': { name: 'pkg', version: '1.0.0', readme: 'x', dist: { tarball: 't' } },
      ...(newVersion ? { '1.1.0': { name: 'pkg', version: '1.1.0', dist: { tarball: 't2' } } } : {}),
    },
    time: { created: OLD, modified: NEW, '1.0.0': OLD, ...(newVersion ? { '1.1.0': NEW } : {}) },
  }
}

function rewritten(o: RewriteOutcome) {
  if (o.kind !== 'rewritten') throw new Error(`expected rewritten, got ${JSON.stringify(o)}`)
  return o
}

t.test('npm_full: young versions withheld, tags moved, times reported', async (t) => {
  const o = rewritten(runRewriteJob(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW }, NPM))
  t.equal(o.unchanged, false)
  t.same(o.withheld, ['1.1.0'])
  t.same(o.withheldVersions, ['1.1.0'])
  t.same(o.tagsMoved, { latest: { from: '1.1.0', to: '1.0.0' } })
  t.same(o.times, [
    ['1.0.0', Date.parse(OLD)],
    ['1.1.0', Date.parse(NEW)],
  ])
  t.match(dec(o.body), { 'dist-tags': { latest: '1.0.0' }, versions: { '1.0.0': { readme: 'x' } } })
})

t.test('npm_full with nothing withheld hands back the upstream bytes untouched', async (t) => {
  const bytes = enc(doc(false))
  const o = rewritten(runRewriteJob(bytes, { format: 'npm_full', name: 'pkg', nowMs: NOW }, NPM))
  t.equal(o.unchanged, true)
  t.equal(o.body, bytes)
})

t.test('npm_abbreviated answers in the abbreviated form', async (t) => {
  const o = rewritten(runRewriteJob(enc(doc()), { format: 'npm_abbreviated', name: 'pkg', nowMs: NOW }, NPM))
  const body = dec(o.body) as Record<string, unknown>
  t.same(Object.keys(body), ['name', 'modified', 'dist-tags', 'versions'])
  t.same(body.versions, { '1.0.0': { name: 'pkg', version: '1.0.0', dist: { tarball: 't' } } })
})

t.test('npm_times returns publish times and no body', async (t) => {
  const o = rewritten(runRewriteJob(enc(doc()), { format: 'npm_times', name: 'pkg', nowMs: NOW }, NPM))
  t.equal(o.body.byteLength, 0)
  t.equal(o.times.length, 2)
})

t.test('withheld_all and invalid outcomes', async (t) => {
  const allNew = { ...doc(), versions: { '1.1.0': {} }, 'dist-tags': { latest: '1.1.0' } }
  t.match(runRewriteJob(enc(allNew), { format: 'npm_full', name: 'pkg', nowMs: NOW }, NPM), {
    kind: 'withheld_all',
    detail: 'too_new',
    why: 'no_version_left',
    withheld: ['1.1.0'],
  })
  const job = { format: 'npm_full', name: 'pkg', nowMs: NOW } as const
  t.same(runRewriteJob(new TextEncoder().encode('{nope'), job, NPM), { kind: 'invalid', problem: 'not_json' })
  t.same(runRewriteJob(new Uint8Array([0xff, 0xfe]), job, NPM), { kind: 'invalid', problem: 'not_json' })
  t.same(runRewriteJob(enc([1]), job, NPM), { kind: 'invalid', problem: 'bad_document' })
  t.same(runRewriteJob(enc({ versions: 1 }), job, NPM), { kind: 'invalid', problem: 'bad_document' })
  t.same(runRewriteJob(enc(doc()), job, PYPI), { kind: 'invalid', problem: 'bad_rules' })
  t.same(runRewriteJob(new Uint8Array(MAX_DOCUMENT_BYTES + 1), job, NPM), { kind: 'invalid', problem: 'too_large' })
})

const SIMPLE = readFileSync(new URL('../../fixtures/packages/simple-demo-pkg.json', import.meta.url))

t.test('pypi_simple_json and pypi_simple_html from the same JSON page', async (t) => {
  const job = { name: 'demo-pkg', nowMs: NOW }
  const json = rewritten(runRewriteJob(SIMPLE, { ...job, format: 'pypi_simple_json' }, PYPI))
  t.equal(json.withheld.length, 5)
  t.same(json.withheldVersions, ['0.9.0', '2.0.0'])
  t.ok(
    json.times.some(([file]) => file === 'demo_pkg-2.0.0.tar.gz'),
    'upload times of every file, for downloads',
  )
  t.equal((dec(json.body) as { files: unknown[] }).files.length, 4)
  const html = rewritten(runRewriteJob(SIMPLE, { ...job, format: 'pypi_simple_html' }, PYPI))
  const text = new TextDecoder().decode(html.body)
  t.equal(text.match(/<a /g)?.length, 4)
  t.notMatch(text, /demo_pkg-2\.0\.0\.tar\.gz/)
})

t.test('pypi_project_json', async (t) => {
  const legacy = {
    info: { version: '1.0.0' },
    urls: [{ filename: 'demo_pkg-1.0.0.tar.gz', upload_time_iso_8601: NEW }],
  }
  const job = { name: 'demo-pkg', nowMs: NOW, format: 'pypi_project_json' } as const
  t.match(runRewriteJob(enc(legacy), { ...job, version: '1.0.0' }, PYPI), { kind: 'withheld_all', detail: 'too_new' })
  const old = { ...legacy, urls: [{ filename: 'demo_pkg-1.0.0.tar.gz', upload_time_iso_8601: OLD }] }
  t.match(runRewriteJob(enc(old), job, PYPI), { kind: 'rewritten', unchanged: true })
})

t.test('the pool runs jobs off the event loop with the same results', async (t) => {
  const pool = createPackumentPool(2)
  t.teardown(() => pool.close())
  const other = rules('npm', ['pkg@1.0.0'])
  const denyOld = packageRules('npm', { deny: ['pkg@1.0.0'] })
  const jobs = [
    pool.rewrite(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM }),
    pool.rewrite(enc(doc()), { format: 'npm_abbreviated', name: 'pkg', nowMs: NOW, rules: NPM }),
    pool.rewrite(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: other }),
    pool.rewrite(new Uint8Array(SIMPLE), { format: 'pypi_simple_html', name: 'demo-pkg', nowMs: NOW, rules: PYPI }),
    pool.rewrite(enc(doc(false)), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM }),
    // Two blocks as one (two groups' rules): the worker compiles both, and either withholds.
    pool.rewrite(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: allOfPackageRules([NPM, denyOld]) }),
  ]
  const [full, abbreviated, denied, html, same, both] = await Promise.all(jobs)
  t.match(full, { kind: 'rewritten', withheld: ['1.1.0'], tagsMoved: { latest: { from: '1.1.0', to: '1.0.0' } } })
  t.same(Object.keys(dec(rewritten(abbreviated!).body) as object), ['name', 'modified', 'dist-tags', 'versions'])
  t.match(denied, { kind: 'withheld_all', detail: 'too_new', withheld: ['1.0.0', '1.1.0'] })
  t.equal(new TextDecoder().decode(rewritten(html!).body).match(/<a /g)?.length, 4)
  t.match(same, { kind: 'rewritten', unchanged: true })
  t.same(dec(rewritten(same!).body), doc(false), 'the bytes come back whole')
  t.match(both, { kind: 'withheld_all', withheld: ['1.0.0', '1.1.0'] })
})

t.test('the pool refuses oversized documents and answers failed once closed', async (t) => {
  const pool = createPackumentPool(1)
  const big = new Uint8Array(MAX_DOCUMENT_BYTES + 1)
  t.same(await pool.rewrite(big, { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM }), {
    kind: 'invalid',
    problem: 'too_large',
  })
  const pending = pool.rewrite(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM })
  pool.close()
  t.same(await pending, { kind: 'failed', detail: 'closed' })
  t.same(await pool.rewrite(enc(doc()), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM }), {
    kind: 'failed',
    detail: 'closed',
  })
})

t.test('a view on part of a shared buffer is copied, not taken from its owner', async (t) => {
  const pool = createPackumentPool(1)
  t.teardown(() => pool.close())
  const bytes = enc(doc(false))
  const shared = new Uint8Array(bytes.length + 8)
  shared.set(bytes, 4)
  const view = shared.subarray(4, 4 + bytes.length)
  const o = await pool.rewrite(view, { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: NPM })
  t.match(o, { kind: 'rewritten', unchanged: true })
  t.equal(shared.byteLength, bytes.length + 8, 'the shared buffer is still usable')
})

t.test('a worker that has forgotten a rule set asks for it again', async (t) => {
  const pool = createPackumentPool(1)
  t.teardown(() => pool.close())
  // More rule sets than a worker keeps (16), fewer than the pool remembers sending (32).
  const sets = Array.from({ length: 20 }, (_, i) => rules('npm', [`other-${i}`, ...(i === 0 ? ['pkg@1.0.0'] : [])]))
  for (const set of sets) {
    const o = await pool.rewrite(enc(doc(false)), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: set })
    t.equal(o.kind, set === sets[0] ? 'withheld_all' : 'rewritten')
  }
  const again = await pool.rewrite(enc(doc(false)), { format: 'npm_full', name: 'pkg', nowMs: NOW, rules: sets[0]! })
  t.match(again, { kind: 'withheld_all', detail: 'denied', withheld: ['1.0.0'] }, 'the first set is used, recompiled')
})
