import { createServer as createHttpsServer } from 'node:https'
import type { RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createSecureContext } from 'node:tls'
import { once } from 'node:events'
import { gzipSync } from 'node:zlib'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { createTestCa, type TestCa } from '../helpers/test-ca.js'
import { curl } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import { groupYaml, pinnedUpstreamYaml, TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { run as runToEnd, type RunResult } from '../helpers/spawn.js'
import {
  buildNpmTarball,
  buildWheel,
  daysAgo,
  packument,
  sendDocument,
  type Built,
  type NpmPackage,
} from '../helpers/registry.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

// SPEC §11 through the real proxy: real npm and pip against loopback registries pinned as
// registry.npmjs.org, pypi.org and files.pythonhosted.org (the proxy dials 127.0.0.1 only).

/** A package client run to completion, bounded (killed after 90 s, which fails the assertion on its code). */
const run = (cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> =>
  runToEnd(cmd, args, { env, cwd, timeoutMs: 90_000 })

const NPM_PACKAGES: readonly NpmPackage[] = [
  {
    name: 'demo',
    versions: [
      { version: '1.0.0', publishedAt: daysAgo(40) },
      { version: '1.1.0', publishedAt: daysAgo(10) },
      { version: '2.0.0', publishedAt: new Date(Date.now() - 3600_000) },
    ],
    distTags: { latest: '2.0.0' },
  },
  { name: 'evil-pkg', versions: [{ version: '1.0.0', publishedAt: daysAgo(100) }], distTags: { latest: '1.0.0' } },
  {
    name: '@acme/tool',
    versions: [{ version: '3.0.0', publishedAt: new Date(Date.now() - 600_000) }],
    distTags: { latest: '3.0.0' },
  },
  {
    name: 'backported',
    versions: [
      { version: '1.0.0', publishedAt: daysAgo(40) },
      { version: '0.9.1', publishedAt: new Date(Date.now() - 3600_000) },
    ],
    distTags: { latest: '1.0.0', legacy: '0.9.1' },
  },
  {
    name: 'fresh-only',
    versions: [{ version: '0.1.0', publishedAt: new Date(Date.now() - 600_000) }],
    distTags: { latest: '0.1.0' },
  },
  {
    // Served gzipped whatever the request asks, as some registries and caches do.
    name: 'squeezed',
    versions: [
      { version: '1.0.0', publishedAt: daysAgo(40) },
      { version: '2.0.0', publishedAt: new Date(Date.now() - 3600_000) },
    ],
    distTags: { latest: '2.0.0' },
  },
]

t.test('npm: cooldown, deny list, scoped exemptions, through real npm', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-pkg-npm-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const tarballs = new Map<string, Built>()
  for (const p of NPM_PACKAGES)
    for (const v of p.versions) tarballs.set(`${p.name}@${v.version}`, await buildNpmTarball(work, p.name, v.version))

  const ca = createTestCa(t)
  let port = 0
  const hits = new Map<string, number>()
  const registry = await startHttpsOrigin(
    t,
    ['registry.npmjs.org'],
    (req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname)
      hits.set(path, (hits.get(path) ?? 0) + 1)
      const base = `https://registry.npmjs.org:${port}`
      for (const p of NPM_PACKAGES) {
        if (path === `/${p.name}` && p.name === 'squeezed') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
          return void res.end(gzipSync(JSON.stringify(packument(p, tarballs, base))))
        }
        if (path === `/${p.name}`) return sendDocument(req, res, JSON.stringify(packument(p, tarballs, base)))
        if (path === `/-/package/${p.name}/dist-tags`) return sendDocument(req, res, JSON.stringify(p.distTags))
        const tag = path.startsWith(`/-/package/${p.name}/dist-tags/`) ? path.split('/').pop() : undefined
        if (tag !== undefined && Object.hasOwn(p.distTags, tag))
          return sendDocument(req, res, JSON.stringify(p.distTags[tag]))
        for (const v of p.versions) {
          if (path === `/${p.name}/-/${p.name.split('/').pop()}-${v.version}.tgz`) {
            const built = tarballs.get(`${p.name}@${v.version}`) as Built
            res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': built.bytes.length })
            return void res.end(built.bytes)
          }
        }
      }
      if (req.method === 'POST' && path === '/-/npm/v1/security/advisories/bulk') {
        res.writeHead(200, { 'content-type': 'application/json' })
        return void res.end('{}')
      }
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"Not found"}')
    },
    ca,
  )
  port = registry.port
  const deny = join(work, 'malicious-npm.txt')
  writeFileSync(deny, '# known bad\nevil-pkg\n')
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [port], hosts: ['registry.npmjs.org'], caFile: ca.certFile })}${groupYaml([
      `preset: npm
packages:
  min_age: 72h
  deny_file: ${JSON.stringify(deny)}
  min_age_exempt: ["@acme/*"]`,
    ])}  - { id: aud, token: ${TOKEN_HASH}, groups: [g], mode: audit }
`,
  )
  const proxy = `http://ci:${TOKEN}@127.0.0.1:${pc.proxyPort}`
  const caFile = join(pc.dir, 'ca.pem')
  const registryUrl = `https://registry.npmjs.org:${port}`
  const home = join(work, 'home')
  mkdirSync(home)
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    npm_config_cache: join(work, 'cache'),
    npm_config_userconfig: join(home, '.npmrc'),
    npm_config_update_notifier: 'false',
    NO_PROXY: '',
    no_proxy: '',
  }
  const npmArgs = ['--registry', `${registryUrl}/`, '--proxy', proxy, '--https-proxy', proxy, '--cafile', caFile]
  const project = (name: string): string => {
    const dir = join(work, name)
    mkdirSync(dir)
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
    return dir
  }
  const curlVia = (path: string, extra: string[] = []) =>
    curl(['--proxy', proxy, '--cacert', caFile, ...extra, `${registryUrl}${path}`])

  await t.test('npm install resolves the newest version older than min_age; audit is allowed', async (t) => {
    const dir = project('consumer')
    const r = await run('npm', ['install', 'demo', '--no-fund', ...npmArgs], env, dir)
    t.equal(r.code, 0, r.stderr)
    const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'demo', 'package.json'), 'utf8')) as {
      version: string
    }
    t.equal(installed.version, '1.1.0', 'latest moved from 2.0.0 (an hour old) to 1.1.0')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/demo' && x.package !== undefined,
    )
    t.match(rec, { decision: 'allow', package: { registry: 'npm', name: 'demo', version: null, withheld: 1 } })
    // npm's bulk advisory request is part of the preset: no denial left behind by an install.
    await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/-/npm/v1/security/advisories/bulk' && x.decision === 'allow',
    )
    t.notOk(
      pc.decisions().some((x) => x.decision === 'deny'),
      'an install under a cooldown leaves no denial',
    )
  })

  await t.test('metadata answers: abbreviated and full, uncompressed with their own length', async (t) => {
    const abbreviated = await curlVia('/demo', [
      '-H',
      'accept: application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8',
      '-H',
      'accept-encoding: gzip',
    ])
    t.equal(abbreviated.status, 200)
    t.equal(abbreviated.headers['content-type'], 'application/vnd.npm.install-v1+json')
    t.equal(abbreviated.headers['content-encoding'], undefined)
    t.equal(Number(abbreviated.headers['content-length']), Buffer.byteLength(abbreviated.body))
    const doc = JSON.parse(abbreviated.body) as { versions: Record<string, unknown>; 'dist-tags': { latest: string } }
    t.same(Object.keys(doc.versions).sort(), ['1.0.0', '1.1.0'])
    t.equal(doc['dist-tags'].latest, '1.1.0')
    const full = await curlVia('/demo', ['-H', 'if-none-match: "anything"'])
    t.equal(full.status, 200, 'a conditional request is answered whole: the client cannot keep a stale list')
    const fullDoc = JSON.parse(full.body) as { time: Record<string, string> }
    t.notOk('2.0.0' in fullDoc.time, 'the withheld version is gone from time too')
  })

  await t.test('a tarball of a withheld version is refused with a JSON error npm prints', async (t) => {
    const before = hits.get('/demo') ?? 0
    const r = await curlVia('/demo/-/demo-2.0.0.tgz', ['-A', 'npm/10.0.0 node/v20'])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_package')
    const body = JSON.parse(r.body) as Record<string, unknown>
    t.match(body, { reason: 'denied_package', detail: 'too_new', package: 'demo', version: '2.0.0' })
    t.match(String(body.error), /min_age/)
    t.equal(hits.get('/demo') ?? 0, before, 'publish time came from the cache: no extra upstream request')
    t.equal(hits.get('/demo/-/demo-2.0.0.tgz') ?? 0, 0, 'the tarball never left the registry')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/demo/-/demo-2.0.0.tgz',
    )
    t.match(rec, { decision: 'deny', reason: 'denied_package', detail: 'too_new', package: { version: '2.0.0' } })

    // An admin approves the denial: the hot fix goes through, as a download and in the metadata, so
    // `npm install demo@2.0.0` finds it; other agents still do not see it.
    const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', { request_id: rec.id })
    t.equal(made.status, 201)
    const again = await curlVia('/demo/-/demo-2.0.0.tgz')
    t.equal(again.status, 200)
    const offered = JSON.parse((await curlVia('/demo', ['-H', 'accept: application/json'])).body) as {
      versions: Record<string, unknown>
    }
    t.ok('2.0.0' in offered.versions, 'the approved version is in the metadata again')
    const versionDoc = await curlVia('/demo/2.0.0', ['-H', 'accept: application/json'])
    // The fixture registry serves no version documents: its own 404 says the proxy let the request through.
    t.equal(versionDoc.headers['x-portcullis-decision'], undefined, 'its version document is not refused')
    t.equal(versionDoc.status, 404)
    const dir = project('hotfix')
    const install = await run('npm', ['install', 'demo@2.0.0', '--no-audit', '--no-fund', ...npmArgs], env, dir)
    t.equal(install.code, 0, install.stderr)
    const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'demo', 'package.json'), 'utf8')) as {
      version: string
    }
    t.equal(installed.version, '2.0.0')
    const gone = await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)
    t.equal(gone.status, 200)
    const after = JSON.parse((await curlVia('/demo', ['-H', 'accept: application/json'])).body) as {
      versions: Record<string, unknown>
    }
    t.notOk('2.0.0' in after.versions, 'withheld again once the approval is revoked')
  })

  await t.test('a denied package fails npm install with the reason and request id', async (t) => {
    const dir = project('victim')
    const r = await run('npm', ['install', 'evil-pkg', '--no-audit', '--no-fund', ...npmArgs], env, dir)
    t.not(r.code, 0)
    t.match(r.stderr, /403/)
    t.match(r.stderr, /evil-pkg is on the registry rules' deny list/)
    t.match(r.stderr, /Request id [0-9A-Z]{26}/)
    const rec = await pc.waitForRecord<DecisionRecord>((x) => x.event === 'decision' && x.path === '/evil-pkg')
    t.match(rec, { decision: 'deny', reason: 'denied_package', detail: 'denied', package: { name: 'evil-pkg' } })
  })

  await t.test(
    'version documents: a dist-tag resolves in the rewritten document; a withheld version is refused',
    async (t) => {
      const latest = await curlVia('/demo/latest', ['-H', 'accept: application/json'])
      t.equal(latest.status, 200)
      t.match(JSON.parse(latest.body), { name: 'demo', version: '1.1.0' })
      const exact = await curlVia('/demo/2.0.0', ['-H', 'accept: application/json'])
      t.equal(exact.status, 403)
      t.match(JSON.parse(exact.body), { detail: 'too_new', version: '2.0.0' })
      const head = await curlVia('/demo/-/demo-1.0.0.tgz', ['-I'])
      t.equal(head.status, 200, 'HEAD of an old tarball passes')
    },
  )

  await t.test('a registry that compresses anyway is read, not refused', async (t) => {
    const dir = project('squeezer')
    const r = await run('npm', ['install', 'squeezed', '--no-fund', '--no-audit', ...npmArgs], env, dir)
    t.equal(r.code, 0, r.stderr)
    const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'squeezed', 'package.json'), 'utf8')) as {
      version: string
    }
    t.equal(installed.version, '1.0.0', 'the gzipped document was rewritten like any other')
    const doc = await curlVia('/squeezed', ['-H', 'accept: application/json'])
    t.equal(doc.headers['content-encoding'], undefined, 'answered as the bytes it is')
    t.same(Object.keys((JSON.parse(doc.body) as { versions: object }).versions), ['1.0.0'])
  })

  await t.test('npm dist-tag ls lists tags from the rewritten document', async (t) => {
    const r = await run('npm', ['dist-tag', 'ls', 'demo', ...npmArgs], env, work)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^latest: 1\.1\.0$/m, 'latest moved to the newest version old enough')
    t.notMatch(r.stdout, /2\.0\.0/, 'the withheld version is named by no tag')
    const denied = await curlVia('/-/package/evil-pkg/dist-tags')
    t.equal(denied.status, 403, 'a denied package lists no tags either')
    const one = await curlVia('/-/package/demo/dist-tags/latest')
    t.equal(one.status, 200)
    t.same(JSON.parse(one.body), '1.1.0', 'one tag, asked alone, names the version it moved to')
    const none = await curlVia('/-/package/demo/dist-tags/nosuchtag')
    t.equal(none.status, 404)
    t.equal(none.headers['x-portcullis-decision'], undefined, 'a tag nobody set is not a refusal')
  })

  await t.test('a dist-tag the registry lacks is its 404; one dropped with its version is too_new', async (t) => {
    const missing = await curlVia('/backported/nosuchtag', ['-H', 'accept: application/json'])
    t.equal(missing.status, 404)
    t.same(JSON.parse(missing.body), { error: 'version not found: nosuchtag' })
    t.equal(missing.headers['x-portcullis-decision'], undefined, 'not a proxy refusal')
    const dropped = await curlVia('/backported/legacy', ['-H', 'accept: application/json'])
    t.equal(dropped.status, 403)
    t.match(JSON.parse(dropped.body), { detail: 'too_new', package: 'backported', version: '0.9.1' })
    t.match(JSON.parse(dropped.body).message, /published 1 h ago|published 0 h ago/)
  })

  await t.test('a package with nothing old enough is refused whole', async (t) => {
    const r = await curlVia('/fresh-only', ['-H', 'accept: application/json'])
    t.equal(r.status, 403)
    t.match(JSON.parse(r.body), { detail: 'too_new', package: 'fresh-only' })
    t.match(JSON.parse(r.body).message, /every version of this package is withheld by the registry rules' min_age/)
  })

  await t.test('scoped names: exempt scope, every %2f spelling', async (t) => {
    for (const path of ['/@acme%2ftool', '/@acme%2Ftool', '/@acme/tool']) {
      const r = await curlVia(path, ['-H', 'accept: application/json'])
      t.equal(r.status, 200, path)
      t.ok('3.0.0' in (JSON.parse(r.body) as { versions: object }).versions, `${path}: exempt from min_age`)
    }
    const tarball = await curlVia('/@acme/tool/-/tool-3.0.0.tgz')
    t.equal(tarball.status, 200)
    const odd = await curlVia('/@acme%252ftool')
    t.equal(odd.status, 403, 'a double-encoded name is refused, not guessed')
    t.equal(odd.headers['x-portcullis-decision'], 'denied_package')
  })

  await t.test('audit mode: the registry answers unmodified; records say what enforce would withhold', async (t) => {
    const audit = `http://aud:${TOKEN}@127.0.0.1:${pc.proxyPort}`
    const viaAudit = (path: string) =>
      curl(['--proxy', audit, '--cacert', caFile, '-H', 'accept: application/json', `${registryUrl}${path}`])
    const doc = await viaAudit('/demo')
    t.equal(doc.status, 200)
    const parsed = JSON.parse(doc.body) as { versions: Record<string, unknown>; 'dist-tags': { latest: string } }
    t.ok('2.0.0' in parsed.versions, 'the young version is still offered')
    t.equal(parsed['dist-tags'].latest, '2.0.0', 'latest is the registry’s own')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.agent === 'aud' && x.path === '/demo',
    )
    t.match(rec, { decision: 'allow', package: { name: 'demo', would_withhold: 1 } })
    t.notOk(rec.package !== undefined && 'withheld' in rec.package, 'nothing was withheld')
    const tarball = await viaAudit('/demo/-/demo-2.0.0.tgz')
    t.equal(tarball.status, 200, 'the young tarball passes in audit mode')
    const tarRec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.agent === 'aud' && x.path === '/demo/-/demo-2.0.0.tgz',
    )
    t.match(tarRec, { decision: 'deny', would_deny: true, reason: 'denied_package', detail: 'too_new' })
    const whole = await viaAudit('/fresh-only')
    t.equal(whole.status, 200, 'a package enforce refuses whole passes in audit mode')
  })

  await t.test('withheld versions are counted by registry', async (t) => {
    const res = await fetch(`${pc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${pc.adminToken}` } })
    const text = await res.text()
    const m = /portcullis_packages_withheld_total\{registry="npm"\} (\d+)/.exec(text)
    t.ok(m !== null && Number(m[1]) >= 1, 'portcullis_packages_withheld_total{registry="npm"}')
  })
})

t.test('PyPI: Simple JSON and HTML, legacy JSON, files, through real pip', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-pkg-pypi-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const old = await buildWheel(work, 'demo-pkg', '1.0.0')
  const young = await buildWheel(work, 'demo-pkg', '2.0.0')
  const uploaded = new Map([
    [old.filename, daysAgo(30)],
    [young.filename, new Date(Date.now() - 3600_000)],
  ])
  const other = await buildWheel(work, 'other-pkg', '0.1.0')
  const indexHits = new Map<string, number>()
  const ca = createTestCa(t)
  let port = 0
  const fileHits: string[] = []
  port = await startPypiHosts(t, ca, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x')
    const files = [old, young].map((w) => ({
      filename: w.filename,
      url: `https://files.pythonhosted.org:${port}/packages/aa/bb/${w.filename}`,
      hashes: { sha256: w.sha256 },
      'upload-time': (uploaded.get(w.filename) as Date).toISOString(),
    }))
    indexHits.set(url.pathname, (indexHits.get(url.pathname) ?? 0) + 1)
    if (url.pathname === '/simple/other-pkg/') {
      const file = {
        filename: other.filename,
        url: `https://files.pythonhosted.org:${port}/packages/cc/dd/${other.filename}`,
        hashes: { sha256: other.sha256 },
        'upload-time': new Date(Date.now() - 60_000).toISOString(),
      }
      const page = { meta: { 'api-version': '1.1' }, name: 'other-pkg', files: [file] }
      return sendDocument(req, res, JSON.stringify(page), 'application/vnd.pypi.simple.v1+json')
    }
    if (url.pathname === '/simple/demo-pkg/') {
      if (!(req.headers.accept ?? '').includes('application/vnd.pypi.simple.v1+json')) {
        res.writeHead(406)
        return void res.end()
      }
      const page = { meta: { 'api-version': '1.1' }, name: 'demo-pkg', versions: ['1.0.0', '2.0.0'], files }
      return sendDocument(req, res, JSON.stringify(page), 'application/vnd.pypi.simple.v1+json')
    }
    if (url.pathname === '/pypi/demo-pkg/json') {
      const releases = Object.fromEntries(
        files.map((f, i) => [
          i === 0 ? '1.0.0' : '2.0.0',
          [{ filename: f.filename, url: f.url, upload_time_iso_8601: f['upload-time'] }],
        ]),
      )
      const doc = { info: { name: 'demo-pkg', version: '2.0.0' }, releases, urls: releases['2.0.0'] }
      return sendDocument(req, res, JSON.stringify(doc))
    }
    if (url.pathname === '/pypi/demo-pkg/2.0.0/json') {
      const young = files[1] as (typeof files)[number]
      const urls = [{ filename: young.filename, url: young.url, upload_time_iso_8601: young['upload-time'] }]
      return sendDocument(req, res, JSON.stringify({ info: { name: 'demo-pkg', version: '2.0.0' }, urls }))
    }
    const wheel = [old, young].find((w) => url.pathname.endsWith(`/${w.filename}`))
    if (wheel !== undefined && req.headers.host?.startsWith('files.pythonhosted.org')) {
      fileHits.push(wheel.filename)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': wheel.bytes.length })
      return void res.end(wheel.bytes)
    }
    res.writeHead(404)
    res.end()
  })
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [port], hosts: ['pypi.org', 'files.pythonhosted.org'], caFile: ca.certFile })}${groupYaml(
      ['preset: pypi\npackages: { min_age: 72h, deny: ["requestz", "evil-3d"] }'],
    )}`,
  )
  const proxy = `http://ci:${TOKEN}@127.0.0.1:${pc.proxyPort}`
  const caFile = join(pc.dir, 'ca.pem')
  const indexUrl = `https://pypi.org:${port}/simple/`
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: work,
    PIP_CONFIG_FILE: '/dev/null',
    PIP_NO_CACHE_DIR: '1',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    NO_PROXY: '',
    no_proxy: '',
  }
  const pip = (args: string[], dest: string) =>
    run(
      'python3',
      [
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--index-url',
        indexUrl,
        '--proxy',
        proxy,
        '--cert',
        caFile,
        '-d',
        dest,
        ...args,
      ],
      env,
      work,
    )
  const curlVia = (url: string, extra: string[] = []) => curl(['--proxy', proxy, '--cacert', caFile, ...extra, url])

  await t.test('pip download takes the newest file older than min_age', async (t) => {
    const dest = join(work, 'dl1')
    const r = await pip(['demo-pkg'], dest)
    t.equal(r.code, 0, r.stderr)
    t.same(readdirSync(dest), [old.filename])
    t.notOk(fileHits.includes(young.filename))
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/simple/demo-pkg/' && x.package !== undefined,
    )
    t.match(rec, { decision: 'allow', package: { registry: 'pypi', name: 'demo-pkg', withheld: 1 } })
  })

  await t.test('asking for the young version by name finds nothing to install', async (t) => {
    const r = await pip(['demo-pkg==2.0.0'], join(work, 'dl2'))
    t.not(r.code, 0)
    t.match(r.stderr, /No matching distribution found for demo-pkg==2\.0\.0/)
  })

  await t.test('a young file fetched directly is refused; its upload time came from the index', async (t) => {
    const r = await curlVia(`https://files.pythonhosted.org:${port}/packages/aa/bb/${young.filename}`)
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_package')
    t.match(r.body, /min_age/)
    t.notOk(fileHits.includes(young.filename))
  })

  await t.test('a file asked for first: its upload time is read from the index host, once', async (t) => {
    const before = indexHits.get('/simple/other-pkg/') ?? 0
    const fileUrl = `https://files.pythonhosted.org:${port}/packages/cc/dd/${other.filename}`
    const r = await curlVia(fileUrl)
    t.equal(r.status, 403)
    t.match(r.body, /other_pkg-0\.1\.0|other-pkg@0\.1\.0/)
    t.equal(indexHits.get('/simple/other-pkg/'), before + 1, 'one index fetch on a cache miss')
    const again = await curlVia(fileUrl)
    t.equal(again.status, 403)
    t.equal(indexHits.get('/simple/other-pkg/'), before + 1, 'the second check is served from the cache')
  })

  await t.test('HTML is rendered from the JSON form; legacy JSON drops the release', async (t) => {
    const html = await curlVia(`${indexUrl}demo-pkg/`, ['-H', 'accept: text/html'])
    t.equal(html.status, 200)
    t.match(html.headers['content-type'], /^text\/html/)
    t.match(html.body, old.filename)
    t.notMatch(html.body, young.filename)
    const legacy = await curlVia(`https://pypi.org:${port}/pypi/demo-pkg/json`)
    t.equal(legacy.status, 200)
    const doc = JSON.parse(legacy.body) as { info: { version: string }; releases: Record<string, unknown> }
    t.same(Object.keys(doc.releases), ['1.0.0'])
    t.equal(doc.info.version, '1.0.0')
    const version = await curlVia(`https://pypi.org:${port}/pypi/demo-pkg/2.0.0/json`)
    t.equal(version.status, 403, "a too-new version's own document is refused")
    t.match(version.body, /version 2\.0\.0 of this package is withheld by the registry rules' min_age/)
    t.notMatch(version.body, /every version/, 'not every version: 1.0.0 is offered')
  })

  await t.test('a denied project is refused by name, whatever the spelling', async (t) => {
    const r = await curlVia(`${indexUrl}Requestz/`, ['-H', 'accept: application/vnd.pypi.simple.v1+json'])
    t.equal(r.status, 403)
    t.match(JSON.parse(r.body), { reason: 'denied_package', detail: 'denied', package: 'requestz' })
    const pipped = await pip(['requestz'], join(work, 'dl3'))
    t.not(pipped.code, 0)
    t.match(pipped.stderr, /No matching distribution found for requestz/)
    // pip shows why only when asked: -vv prints the status the index answered.
    const verbose = await pip(['-vv', 'requestz'], join(work, 'dl4'))
    t.match(verbose.stdout + verbose.stderr, /403/)
  })

  await t.test('an old sdist whose name splits more than one way is judged by every project it could be', async (t) => {
    // The file host's URL names no project: `evil-3d-1.0.tar.gz` is `evil-3d` 1.0 (the PEP 440 split, a
    // denied project), or `evil` "3d-1.0"; `requestz-2fa-1.0.tar.gz` could be `requestz`, denied too.
    const r = await curlVia(`https://files.pythonhosted.org:${port}/packages/ee/ff/requestz-2fa-1.0.tar.gz`, [
      '-H',
      'accept: application/json',
    ])
    t.equal(r.status, 403)
    t.match(JSON.parse(r.body), { reason: 'denied_package', detail: 'denied', package: 'requestz' })
    const evil = await curlVia(`https://files.pythonhosted.org:${port}/packages/ee/ff/evil-3d-1.0.tar.gz`, [
      '-H',
      'accept: application/json',
    ])
    t.equal(evil.status, 403)
    t.match(JSON.parse(evil.body), { reason: 'denied_package', detail: 'denied', package: 'evil-3d' })
  })
})

t.test('PyPI: a private index under a path prefix is read, not passed', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-pkg-prefix-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const old = await buildWheel(work, 'demo-pkg', '1.0.0')
  const young = await buildWheel(work, 'demo-pkg', '2.0.0')
  const ca = createTestCa(t)
  const prefix = '/repository/pypi'
  const origin = await startHttpsOrigin(
    t,
    ['pypi.internal.test'],
    (req, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      const files = [
        { w: old, at: daysAgo(30) },
        { w: young, at: new Date(Date.now() - 3600_000) },
      ].map(({ w, at }) => ({
        filename: w.filename,
        url: `${prefix}/packages/aa/bb/${w.filename}`,
        hashes: { sha256: w.sha256 },
        'upload-time': at.toISOString(),
      }))
      if (path === `${prefix}/simple/demo-pkg/`) {
        const page = { meta: { 'api-version': '1.1' }, name: 'demo-pkg', versions: ['1.0.0', '2.0.0'], files }
        return sendDocument(req, res, JSON.stringify(page), 'application/vnd.pypi.simple.v1+json')
      }
      if (path === `${prefix}/simple/requestz/`) {
        const page = { meta: { 'api-version': '1.1' }, name: 'requestz', versions: [], files: [] }
        return sendDocument(req, res, JSON.stringify(page), 'application/vnd.pypi.simple.v1+json')
      }
      const wheel = [old, young].find((w) => path === `${prefix}/packages/aa/bb/${w.filename}`)
      if (wheel !== undefined) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': wheel.bytes.length })
        return void res.end(wheel.bytes)
      }
      res.writeHead(404)
      res.end()
    },
    ca,
  )
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [origin.port], hosts: ['pypi.internal.test'], caFile: ca.certFile })}${groupYaml([
      'host: pypi.internal.test\npackages: { registry: pypi, min_age: 72h, deny: ["requestz"] }',
    ])}`,
  )
  const base = `https://pypi.internal.test:${origin.port}${prefix}`
  const get = (path: string, args: string[] = []): ReturnType<typeof curl> =>
    curl([
      '--proxy',
      `http://127.0.0.1:${pc.proxyPort}`,
      '--proxy-user',
      `ci:${TOKEN}`,
      '--cacert',
      join(pc.dir, 'ca.pem'),
      ...args,
      `${base}${path}`,
    ])
  const page = await get('/simple/demo-pkg/', ['-H', 'accept: application/vnd.pypi.simple.v1+json'])
  t.equal(page.status, 200)
  t.same(
    (JSON.parse(page.body) as { files: { filename: string }[] }).files.map((f) => f.filename),
    [old.filename],
    'the young file is withheld from the prefixed page',
  )
  const denied = await get('/simple/requestz/')
  t.equal(denied.status, 403)
  t.equal(denied.headers['x-portcullis-decision'], 'denied_package')
  const youngFile = await get(`/packages/aa/bb/${young.filename}`)
  t.equal(youngFile.status, 403)
  t.match(youngFile.body, /too_new|younger|published/)
  t.equal((await get(`/packages/aa/bb/${old.filename}`)).status, 200, 'the old file downloads')
})

t.test(
  'PyPI allow list: an old sdist of an allowed project installs, whatever else its name could read as',
  async (t) => {
    // `py-3d-1.0.tar.gz` is `py-3d` 1.0, or `py` "3d-1.0": `py` is not on the allow list, but the
    // page of `py-3d` lists the file, so it is `py-3d`'s. `py-3d-2.0.tar.gz` is on no page.
    const ca = createTestCa(t)
    const port = await startPypiHosts(t, ca, (req, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      if (path === '/simple/py-3d/') {
        const file = { filename: 'py-3d-1.0.tar.gz', url: '/packages/aa/bb/py-3d-1.0.tar.gz', hashes: {} }
        const page = {
          meta: { 'api-version': '1.1' },
          name: 'py-3d',
          files: [{ ...file, 'upload-time': daysAgo(900) }],
        }
        return sendDocument(req, res, JSON.stringify(page), 'application/vnd.pypi.simple.v1+json')
      }
      if (path.startsWith('/packages/')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        return void res.end('sdist')
      }
      res.writeHead(404)
      res.end()
    })
    const origin = { port }
    const pc = await startPortcullis(
      t,
      `${pinnedUpstreamYaml({ ports: [origin.port], hosts: ['pypi.org', 'files.pythonhosted.org'], caFile: ca.certFile })}${groupYaml(
        ['preset: pypi\npackages: { allow: ["py-3d"] }'],
      )}`,
    )
    const get = (file: string) =>
      curl([
        '--proxy',
        `http://ci:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
        '--cacert',
        join(pc.dir, 'ca.pem'),
        '-H',
        'accept: application/json',
        `https://files.pythonhosted.org:${origin.port}/packages/aa/bb/${file}`,
      ])
    const listed = await get('py-3d-1.0.tar.gz')
    t.equal(listed.status, 200, 'the allowed project lists it: it installs', { body: listed.body })
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.path === '/packages/aa/bb/py-3d-1.0.tar.gz',
    )
    t.match(rec, { decision: 'allow', package: { registry: 'pypi', name: 'py-3d', version: '1.0' } })
    const unlisted = await get('py-3d-2.0.tar.gz')
    t.equal(unlisted.status, 403, 'on no page of an allowed project: it may be the other')
    t.match(JSON.parse(unlisted.body), { reason: 'denied_package', detail: 'not_allowed', package: 'py' })
  },
)

/**
 * pypi.org and files.pythonhosted.org on one loopback port (a certificate each, by SNI): the index
 * port is the files port, as on 443. Returns the port.
 */
async function startPypiHosts(t: Test, ca: TestCa, handler: RequestListener): Promise<number> {
  const contexts = new Map(['pypi.org', 'files.pythonhosted.org'].map((n) => [n, createSecureContext(ca.issue([n]))]))
  const server = createHttpsServer(
    { ...ca.issue(['pypi.org']), SNICallback: (name, cb) => cb(null, contexts.get(name)) },
    handler,
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}
