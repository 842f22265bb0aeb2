import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { createTestCa } from '../helpers/test-ca.js'
import { curl } from '../helpers/clients.js'
import { run } from '../helpers/spawn.js'
import { CLIENT_TIMEOUTS, groupYaml, pinnedUpstreamYaml, TOKEN } from '../helpers/config.js'

// Real npm through the real proxy to a loopback fixture registry that the
// config pins as registry.npmjs.org (the proxy dials 127.0.0.1, never the real host).

const PKG = 'portcullis-tiny-pkg'
const VERSION = '1.0.0'

t.test('npm through an intercepted registry.npmjs.org: install works, publish is denied_method', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-npm-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  // The tarball and its integrity, as the packument must state them.
  const pkgSrc = join(work, 'src')
  mkdirSync(join(pkgSrc, 'package'), { recursive: true })
  writeFileSync(
    join(pkgSrc, 'package', 'package.json'),
    JSON.stringify({ name: PKG, version: VERSION, main: 'index.js', license: 'MIT' }, null, 2),
  )
  writeFileSync(join(pkgSrc, 'package', 'index.js'), "module.exports = 'tiny through portcullis'\n")
  const tgzFile = join(work, `${PKG}-${VERSION}.tgz`)
  const tar = await run('tar', ['-czf', tgzFile, '-C', pkgSrc, 'package'], {
    env: { PATH: process.env.PATH },
    cwd: work,
    timeoutMs: 15_000,
  })
  t.equal(tar.code, 0, tar.stderr)
  const tgz = readFileSync(tgzFile)
  const integrity = `sha512-${createHash('sha512').update(tgz).digest('base64')}`
  const shasum = createHash('sha1').update(tgz).digest('hex')

  const upstreamCa = createTestCa(t)
  let registryPort = 0
  const tarballPath = `/${PKG}/-/${PKG}-${VERSION}.tgz`
  const registry = await startHttpsOrigin(
    t,
    ['registry.npmjs.org'],
    (req, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      if (req.method === 'GET' && path === `/${PKG}`) {
        const packument = {
          name: PKG,
          'dist-tags': { latest: VERSION },
          versions: {
            [VERSION]: {
              name: PKG,
              version: VERSION,
              main: 'index.js',
              license: 'MIT',
              dist: { tarball: `https://registry.npmjs.org:${registryPort}${tarballPath}`, shasum, integrity },
            },
          },
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(packument))
        return
      }
      if (req.method === 'GET' && path === tarballPath) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(tgz.length) })
        res.end(tgz)
        return
      }
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"not found"}')
    },
    upstreamCa,
  )
  registryPort = registry.port

  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [registry.port], hosts: ['registry.npmjs.org'], caFile: upstreamCa.certFile, timeouts: CLIENT_TIMEOUTS })}${groupYaml(['preset: npm'])}`,
  )
  const caFile = join(pc.dir, 'ca.pem')
  const proxyWithAuth = `http://ci:${TOKEN}@127.0.0.1:${pc.proxyPort}`
  const registryUrl = `https://registry.npmjs.org:${registry.port}/`

  // A hermetic npm: temp HOME, cache and user config; every request goes through the proxy,
  // which only reaches the pinned loopback fixture.
  const home = join(work, 'home')
  mkdirSync(home)
  writeFileSync(join(home, '.npmrc'), `//registry.npmjs.org:${registry.port}/:_authToken=fake-token-for-publish-test\n`)
  const npmEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    npm_config_cache: join(work, 'cache'),
    npm_config_userconfig: join(home, '.npmrc'),
    npm_config_globalconfig: join(home, 'global-npmrc'),
    npm_config_update_notifier: 'false',
    NO_PROXY: '',
    no_proxy: '',
  }
  const npmArgs = [
    '--registry',
    registryUrl,
    '--proxy',
    proxyWithAuth,
    '--https-proxy',
    proxyWithAuth,
    '--cafile',
    caFile,
    '--no-audit',
    '--no-fund',
    '--no-update-notifier',
  ]

  t.test('npm install fetches the packument and tarball through the proxy', async (t) => {
    const project = join(work, 'project')
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    const r = await run('npm', ['install', `${PKG}@${VERSION}`, ...npmArgs], {
      env: npmEnv,
      cwd: project,
      timeoutMs: 60_000,
    })
    t.equal(r.code, 0, r.stderr)
    t.equal(
      readFileSync(join(project, 'node_modules', PKG, 'index.js'), 'utf8'),
      "module.exports = 'tiny through portcullis'\n",
    )
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { integrity?: string; resolved?: string }>
    }
    t.match(lock.packages[`node_modules/${PKG}`], {
      integrity,
      resolved: `https://registry.npmjs.org:${registry.port}${tarballPath}`,
    })
    // The origin saw both GETs, without proxy credentials.
    t.ok(
      registry.seen.some((s) => s.method === 'GET' && s.url === `/${PKG}`),
      'packument fetched',
    )
    t.ok(
      registry.seen.some((s) => s.method === 'GET' && s.url === tarballPath),
      'tarball fetched',
    )
    t.notOk(
      registry.seen.some((s) => s.headers['proxy-authorization'] !== undefined),
      'no Proxy-Authorization upstream',
    )
    // The records: intercepted CONNECT, and each inner GET allowed by the preset rule.
    const connect = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.decision === 'allow',
    )
    t.match(connect, { tls: 'intercept', agent: 'ci', host: 'registry.npmjs.org', port: registry.port })
    const doc = await pc.waitForRecord((x) => x.event === 'decision' && x.method === 'GET' && x.path === `/${PKG}`)
    t.match(doc, { tls: 'intercept', decision: 'allow', reason: 'allowed', rule: 'g.allow[0]', scheme: 'https' })
    const tarRec = await pc.waitForRecord((x) => x.event === 'decision' && x.method === 'GET' && x.path === tarballPath)
    t.match(tarRec, { tls: 'intercept', decision: 'allow', rule: 'g.allow[0]' })
  })

  t.test('a PUT to the registry (a publish) is 403 denied_method and never reaches it', async (t) => {
    const before = registry.seen.length
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `ci:${TOKEN}`,
      '--cacert',
      caFile,
      '-X',
      'PUT',
      '-H',
      'content-type: application/json',
      '--data',
      '{"name":"x"}',
      `${registryUrl}${PKG}`,
    ])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_method')
    const id = r.headers['x-portcullis-request-id']
    t.ok(id)
    t.match(
      r.body,
      new RegExp(
        `portcullis blocked PUT https://registry\\.npmjs\\.org:${registry.port}/${PKG} for agent ci: this method is not allowed for this host`,
      ),
    )
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.method === 'PUT' && x.id === id)
    t.match(rec, { tls: 'intercept', decision: 'deny', reason: 'denied_method', path: `/${PKG}` })
    t.equal(registry.seen.length, before, 'the registry received nothing')
  })

  t.test('npm publish is refused the same way, and npm reports the 403', async (t) => {
    const before = registry.seen.length
    // A new version: npm checks the packument first and refuses to republish 1.0.0 by itself.
    const next = join(work, 'next')
    mkdirSync(next)
    writeFileSync(
      join(next, 'package.json'),
      JSON.stringify({ name: PKG, version: '1.0.1', main: 'index.js', license: 'MIT' }),
    )
    writeFileSync(join(next, 'index.js'), "module.exports = 'next'\n")
    const earlierPuts = new Set(
      pc
        .decisions()
        .filter((x) => x.method === 'PUT')
        .map((x) => x.id),
    )
    const r = await run('npm', ['publish', next, ...npmArgs], { env: npmEnv, cwd: work, timeoutMs: 60_000 })
    t.not(r.code, 0)
    // npm shows the status and URL only: it relays a JSON body's `error` field, not a text body.
    t.match(r.stderr, `403 Forbidden - PUT https://registry.npmjs.org:${registry.port}/${PKG}`)
    t.match(r.stderr, /E403/)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.method === 'PUT' && !earlierPuts.has(x.id))
    t.match(rec, { tls: 'intercept', reason: 'denied_method' })
    t.notOk(
      registry.seen.slice(before).some((s) => s.method !== 'GET'),
      'no write reached the registry',
    )
  })
})
