import t from 'tap'
import { readFileSync } from 'node:fs'
import { rewriteProjectJson, rewriteSimplePage, uploadTimes, parseUploadTime } from '../../../src/packages/pypi.js'
import { escapeHtml, renderSimpleHtml } from '../../../src/packages/pypi-html.js'
import type { JsonObject } from '../../../src/packages/npm-packument.js'
import type { PackageRules, PackageRulesBlock } from '../../../src/packages/rules.js'
import { packageRules } from '../../helpers/package-rules.js'

const HOUR = 3_600_000
const NOW = Date.parse('2026-03-01T00:00:00Z')
const PAGE_FILE = new URL('../../fixtures/packages/simple-demo-pkg.json', import.meta.url)
const page = (): JsonObject => JSON.parse(readFileSync(PAGE_FILE, 'utf8')) as JsonObject

const rules = (over: Partial<PackageRulesBlock> = {}): PackageRules =>
  packageRules('pypi', { minAgeMs: 72 * HOUR, ...over })

const opts = (r: PackageRules = rules(), project = 'demo-pkg') => ({ project, rules: r, nowMs: NOW })
const names = (files: unknown): string[] => (files as JsonObject[]).map((f) => f.filename as string)

interface Anchor {
  readonly text: string
  readonly attrs: Record<string, string>
}

/** A strict reader for the anchors renderSimpleHtml writes: every attribute double-quoted. */
function parseAnchors(html: string): Anchor[] {
  const unescape = (s: string) =>
    s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!)
  const anchors: Anchor[] = []
  for (const m of html.matchAll(/<a ((?:[a-z-]+="[^"<>]*" ?)+)>([^<>]*)<\/a>/g)) {
    const attrs: Record<string, string> = {}
    for (const a of (m[1] as string).matchAll(/([a-z-]+)="([^"]*)"/g)) attrs[a[1] as string] = unescape(a[2] as string)
    anchors.push({ text: unescape(m[2] as string), attrs })
  }
  return anchors
}

t.test('simple page: young, unparseable and timeless files are withheld, per file', async (t) => {
  const input = page()
  const before = structuredClone(input)
  const r = rewriteSimplePage(input, opts())
  t.same(input, before, 'the input is not mutated')
  t.equal(r.kind, 'rewritten')
  if (r.kind !== 'rewritten') return
  t.same(names(r.page.files), [
    'demo_pkg-1.0.0.tar.gz',
    'demo_pkg-1.0.0-py3-none-any.whl',
    'demo_pkg-1.1.0.tar.gz',
    'demo_pkg-2.0.0rc1-py3-none-any.whl',
  ])
  t.same(r.withheld, [
    { filename: 'demo_pkg-1.1.0-py3-none-any.whl', version: '1.1.0', detail: 'too_new' },
    { filename: 'demo_pkg-2.0.0.tar.gz', version: '2.0.0', detail: 'too_new' },
    { filename: 'demo_pkg-2.0.0-py3-none-any.whl', version: '2.0.0', detail: 'too_new' },
    { filename: 'demo_pkg-0.5.0.win32.exe', version: null, detail: 'unparseable' },
    { filename: 'demo_pkg-0.9.0.tar.gz', version: '0.9.0', detail: 'too_new' },
  ])
  t.same(r.page.versions, ['0.5.0', '1.0.0', '1.1.0', '2.0.0rc1', '0.1.0'], 'PEP 700 versions stay consistent')
  t.same(r.withheldVersions, ['0.9.0', '2.0.0'])
  t.same(r.page.meta, input.meta)
  t.equal(r.page.name, 'demo-pkg')
})

t.test('simple page: deny by version and deny by name', async (t) => {
  const r = rewriteSimplePage(page(), opts(rules({ minAgeMs: null, deny: ['Demo_Pkg==1.0.0'] })))
  t.match(r, { kind: 'rewritten' })
  if (r.kind === 'rewritten') {
    t.notOk(names(r.page.files).some((n) => n.includes('-1.0.0')))
    t.ok((r.page.versions as string[]).includes('1.1.0'))
    t.notOk((r.page.versions as string[]).includes('1.0.0'))
  }
  const denied = rewriteSimplePage(page(), opts(rules({ deny: ['demo.pkg'] })))
  t.match(denied, { kind: 'withheld_all', detail: 'denied' })
  const notAllowed = rewriteSimplePage(page(), opts(rules({ allow: ['requests'] })))
  t.match(notAllowed, { kind: 'withheld_all', detail: 'not_allowed' })
})

t.test('simple page: every file withheld is withheld_all, an empty page is not', async (t) => {
  const young = page()
  for (const f of young.files as JsonObject[]) f['upload-time'] = new Date(NOW - HOUR).toISOString()
  t.match(rewriteSimplePage(young, opts()), { kind: 'withheld_all', detail: 'too_new' })
  const empty = { meta: { 'api-version': '1.1' }, name: 'x', files: [], versions: [] }
  t.match(rewriteSimplePage(empty, opts(rules(), 'x')), { kind: 'rewritten', withheld: [] })
})

t.test('simple page: exempt projects keep young files', async (t) => {
  const r = rewriteSimplePage(page(), opts(rules({ minAgeExempt: ['demo-pkg'] })))
  t.match(r, { kind: 'rewritten' })
  if (r.kind === 'rewritten') {
    t.same(
      r.withheld.map((w) => w.detail),
      ['unparseable'],
    )
  }
})

t.test('simple page: nothing withheld returns the page itself', async (t) => {
  const p = { meta: { 'api-version': '1.0' }, name: 'x', files: [{ filename: 'x-1.0.tar.gz', url: 'u' }] }
  const r = rewriteSimplePage(p, opts(rules({ minAgeMs: null }), 'x'))
  t.match(r, { kind: 'rewritten' })
  if (r.kind === 'rewritten') t.equal(r.page, p)
})

t.test('simple page: malformed documents are invalid', async (t) => {
  t.same(rewriteSimplePage([], opts()), { kind: 'invalid', problem: 'not_object' })
  t.same(rewriteSimplePage({ files: {} }, opts()), { kind: 'invalid', problem: 'bad_files' })
  t.same(rewriteSimplePage({ files: [], versions: [1] }, opts()), { kind: 'invalid', problem: 'bad_versions' })
})

t.test('uploadTimes maps file names to upload times for judging downloads', async (t) => {
  const times = uploadTimes(page())
  t.equal(times.get('demo_pkg-1.0.0.tar.gz'), Date.parse('2025-06-01T10:00:00Z'))
  t.equal(times.has('demo_pkg-0.9.0.tar.gz'), false, 'a file without upload-time has no entry')
  t.equal(parseUploadTime('2020-01-01T00:00:00'), Date.parse('2020-01-01T00:00:00Z'), 'a zoneless time is UTC')
  t.equal(parseUploadTime('nope'), null)
})

t.test('HTML rendered from the filtered JSON links exactly the kept files', async (t) => {
  const r = rewriteSimplePage(page(), opts())
  if (r.kind !== 'rewritten') throw new Error('expected rewritten')
  const html = renderSimpleHtml(r.page, 'demo-pkg')
  t.match(html, /^<!DOCTYPE html>/)
  t.match(html, /<meta name="pypi:repository-version" content="1\.1">/)
  t.match(html, /<title>Links for demo-pkg<\/title>/)
  t.match(html, /<!--SERIAL 24680-->/)
  const anchors = parseAnchors(html)
  t.same(
    anchors.map((a) => a.text),
    names(r.page.files),
  )
  const [sdist, wheel, , rc] = anchors as [Anchor, Anchor, Anchor, Anchor]
  t.same(sdist.attrs, {
    href: 'https://files.pythonhosted.org/packages/aa/bb/cc/demo_pkg-1.0.0.tar.gz#sha256=' + '1'.repeat(64),
    'data-requires-python': '>=3.8',
  })
  t.same(wheel.attrs, {
    href: 'https://files.pythonhosted.org/packages/aa/bb/dd/demo_pkg-1.0.0-py3-none-any.whl#sha256=' + '2'.repeat(64),
    'data-requires-python': '>=3.8',
    'data-dist-info-metadata': 'sha256=' + '3'.repeat(64),
    'data-core-metadata': 'sha256=' + '3'.repeat(64),
    'data-provenance': 'https://pypi.org/integrity/demo-pkg/1.0.0/demo_pkg-1.0.0-py3-none-any.whl/provenance',
  })
  t.equal(rc.attrs['data-yanked'], 'broken build')
  t.match(html, /data-requires-python="&gt;=3\.8"/, 'the comparison operator is escaped')
})

t.test('HTML escapes every upstream value', async (t) => {
  const hostile = {
    meta: { 'api-version': '1.1"><script>', '_last-serial': '1 --><script>' },
    name: 'x"><script>alert(1)</script>',
    files: [
      {
        filename: 'x"><script>alert(1)</script>',
        url: 'https://e.test/a"onmouseover="alert(1)#frag',
        hashes: { sha256: 'abc"><x', md5: 'deadbeef', 'bad name': 'ff' },
        'requires-python': '<3&"\'',
        yanked: '<b>bad</b>',
        'core-metadata': true,
        'gpg-sig': false,
      },
      { filename: 'no-url.tar.gz' },
    ],
  }
  const html = renderSimpleHtml(hostile, 'x')
  t.notMatch(html, /<script/i)
  t.notMatch(html, /<b>/)
  const anchors = parseAnchors(html)
  t.equal(anchors.length, 1, 'a file without a URL is not linked')
  const a = anchors[0] as Anchor
  t.equal(a.text, hostile.files[0]!.filename)
  t.same(a.attrs, {
    href: 'https://e.test/a"onmouseover="alert(1)#md5=deadbeef', // a hash that is not hex is skipped
    'data-requires-python': '<3&"\'',
    'data-yanked': '<b>bad</b>',
    'data-dist-info-metadata': 'true',
    'data-core-metadata': 'true',
    'data-gpg-sig': 'false',
  })
  t.match(html, /content="1\.0"/, 'an odd api-version falls back to 1.0')
  t.notMatch(html, /SERIAL/, 'a serial that is not a number is left out')
  t.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;')
})

t.test('HTML: yanked without a reason is an empty data-yanked', async (t) => {
  const html = renderSimpleHtml({ files: [{ filename: 'x-1.0.tar.gz', url: 'u', yanked: true }] }, 'x')
  t.same(parseAnchors(html)[0]?.attrs, { href: 'u', 'data-yanked': '' })
  t.match(html, /<h1>Links for x<\/h1>/)
})

/** A legacy `/pypi/<p>/json` document for demo-pkg. */
function legacy(): JsonObject {
  const file = (filename: string, at: string) => ({
    filename,
    url: `https://files.pythonhosted.org/packages/xx/${filename}`,
    digests: { sha256: 'ab' },
    upload_time: at.slice(0, 19),
    upload_time_iso_8601: at,
    yanked: false,
  })
  const releases = {
    '0.1.0': [],
    '1.0.0': [file('demo_pkg-1.0.0.tar.gz', '2025-06-01T10:00:00.000000Z')],
    '1.1.0': [
      file('demo_pkg-1.1.0.tar.gz', '2025-09-01T10:00:00.000000Z'),
      file('demo_pkg-1.1.0-py3-none-any.whl', '2026-02-28T12:00:00.000000Z'),
    ],
    '2.0.0': [file('demo_pkg-2.0.0.tar.gz', '2026-02-28T20:00:00.000000Z')],
  }
  return {
    info: { name: 'demo-pkg', version: '2.0.0', summary: 's', requires_dist: ['x'] },
    last_serial: 5,
    releases,
    urls: releases['2.0.0'],
    vulnerabilities: [],
  }
}

t.test('legacy JSON: releases filtered, info.version moved to the newest release left', async (t) => {
  const input = legacy()
  const before = structuredClone(input)
  const r = rewriteProjectJson(input, opts())
  t.same(input, before, 'the input is not mutated')
  t.equal(r.kind, 'rewritten')
  if (r.kind !== 'rewritten') return
  t.same(Object.keys(r.doc.releases as object), ['0.1.0', '1.0.0', '1.1.0'])
  t.same(names((r.doc.releases as JsonObject)['1.1.0']), ['demo_pkg-1.1.0.tar.gz'])
  t.same(r.withheldVersions, ['2.0.0'])
  t.same(
    r.withheld.map((w) => w.filename),
    ['demo_pkg-1.1.0-py3-none-any.whl', 'demo_pkg-2.0.0.tar.gz'],
    'a file in both urls and releases is counted once',
  )
  t.same(r.infoVersion, { from: '2.0.0', to: '1.1.0' })
  t.equal((r.doc.info as JsonObject).version, '1.1.0')
  t.equal((r.doc.info as JsonObject).summary, 's')
  t.same(names(r.doc.urls), ['demo_pkg-1.1.0.tar.gz'])
})

t.test('legacy JSON: a version document whose version is withheld is withheld_all', async (t) => {
  const doc = { info: { name: 'demo-pkg', version: '2.0.0' }, urls: legacy().urls, vulnerabilities: [] }
  t.match(rewriteProjectJson(doc, { ...opts(), version: '2.0.0' }), { kind: 'withheld_all', detail: 'too_new' })
  const denied = { info: { name: 'demo-pkg', version: '1.0.0' }, urls: [] }
  t.match(rewriteProjectJson(denied, { ...opts(rules({ deny: ['demo-pkg==1.0.0'] })), version: '1.0.0' }), {
    kind: 'withheld_all',
    detail: 'denied',
  })
  const fine = { info: { name: 'demo-pkg', version: '1.0.0' }, urls: (legacy().releases as JsonObject)['1.0.0'] }
  const r = rewriteProjectJson(fine, { ...opts(), version: '1.0.0' })
  t.match(r, { kind: 'rewritten', withheld: [], infoVersion: null })
  if (r.kind === 'rewritten') t.equal(r.doc, fine)
})

t.test('legacy JSON: a denied project, and malformed documents', async (t) => {
  t.match(rewriteProjectJson(legacy(), opts(rules({ deny: ['demo-pkg'] }))), { kind: 'withheld_all', detail: 'denied' })
  t.same(rewriteProjectJson(null, opts()), { kind: 'invalid', problem: 'not_object' })
  t.same(rewriteProjectJson({ info: {} }, opts()), { kind: 'invalid', problem: 'bad_info' })
  t.same(rewriteProjectJson({ info: { version: '1' }, releases: { '1': {} } }, opts()), {
    kind: 'invalid',
    problem: 'bad_releases',
  })
  t.same(rewriteProjectJson({ info: { version: '1' }, urls: {} }, opts()), { kind: 'invalid', problem: 'bad_urls' })
})

t.test('legacy JSON: every file young is withheld_all', async (t) => {
  const doc = legacy()
  const releases = doc.releases as Record<string, JsonObject[]>
  for (const files of Object.values(releases))
    for (const f of files) f.upload_time_iso_8601 = new Date(NOW).toISOString()
  t.match(rewriteProjectJson(doc, opts()), { kind: 'withheld_all', detail: 'too_new' })
})

t.test('a refused project withholds every file with the project reason', async (t) => {
  const r = rewriteSimplePage(page(), opts(rules({ allow: ['requests'] })))
  t.equal(r.kind, 'withheld_all')
  if (r.kind === 'withheld_all') {
    t.equal(r.withheld.length, 9)
    t.ok(r.withheld.every((w) => w.detail === 'not_allowed'))
  }
  const legacyDenied = rewriteProjectJson(legacy(), opts(rules({ deny: ['demo-pkg'] })))
  if (legacyDenied.kind === 'withheld_all') t.ok(legacyDenied.withheld.every((w) => w.detail === 'denied'))
})

t.test('file entries that are not objects, or lack a name, are withheld as unparseable', async (t) => {
  const p = { name: 'x', files: [5, { url: 'u' }, { filename: 'x-1.0.tar.gz', 'upload-time': '2020-01-01T00:00:00Z' }] }
  const r = rewriteSimplePage(p, opts(rules(), 'x'))
  t.match(r, { kind: 'rewritten' })
  if (r.kind === 'rewritten') {
    t.same(names(r.page.files), ['x-1.0.tar.gz'])
    t.same(
      r.withheld.map((w) => w.detail),
      ['unparseable', 'unparseable'],
    )
  }
})

t.test('HTML: a file without a usable hash is linked without a fragment', async (t) => {
  const html = renderSimpleHtml({ files: [{ filename: 'x-1.0.tar.gz', url: 'u#old', hashes: { sha256: 'xyz' } }] }, 'x')
  t.same(parseAnchors(html)[0]?.attrs, { href: 'u' })
})

t.test('legacy JSON: a denied info.version with no release entry still moves', async (t) => {
  const doc = legacy()
  const releases = doc.releases as Record<string, unknown>
  delete releases['2.0.0']
  doc.info = { name: 'demo-pkg', version: '3.0.0' }
  doc.urls = []
  const r = rewriteProjectJson(doc, opts(rules({ deny: ['demo-pkg==3.0.0'], minAgeMs: null })))
  t.match(r, { kind: 'rewritten', infoVersion: { from: '3.0.0', to: '1.1.0' } })
  if (r.kind === 'rewritten') t.equal((r.doc.info as JsonObject).version, '1.1.0')
})
