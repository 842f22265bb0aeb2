import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { createTestCa } from '../helpers/test-ca.js'
import { curl } from '../helpers/clients.js'
import { adminCall, until } from '../helpers/admin.js'
import { pinnedUpstreamYaml, TOKEN, tokenHash } from '../helpers/config.js'
import { daysAgo } from '../helpers/registry.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

// SPEC §11 edges of the npm package guard, through the real proxy with curl against a loopback
// registry pinned as registry.npmjs.org: several matching `packages` blocks, approvals and the
// decoded path, the shared publish-time cache.

const HOUR = 3600_000

/** name → version → publish time. */
const PACKAGES: Readonly<Record<string, Readonly<Record<string, Date>>>> = {
  oldpkg: { '1.0.0': daysAgo(30), '2.0.0': new Date(Date.now() - HOUR) },
  'event-stream': { '1.0.0': daysAgo(30) },
}

/** A registry that reads paths as a decoding server does: `%2F` is `/`, and dot segments are resolved. */
async function startRegistry(t: Test) {
  const ca = createTestCa(t)
  const origin = await startHttpsOrigin(
    t,
    ['registry.npmjs.org'],
    (req, res) => {
      const path = new URL(decodeURIComponent(req.url ?? '/'), 'https://x').pathname
      // A registry that quotes the request's credential: in a 401, and in a packument's description.
      const auth = req.headers.authorization ?? ''
      if (path === '/echo') {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': `Bearer realm="${auth}"` })
        return void res.end(JSON.stringify({ error: `bad credentials: ${auth}` }))
      }
      if (path === '/echo200') {
        res.writeHead(200, { 'content-type': 'application/json' })
        const published = daysAgo(30).toISOString()
        return void res.end(
          JSON.stringify({
            name: 'echo200',
            description: `auth=${auth}`,
            'dist-tags': { latest: '1.0.0' },
            versions: { '1.0.0': { name: 'echo200', version: '1.0.0' } },
            time: { modified: published, '1.0.0': published },
          }),
        )
      }
      const abbreviated = (req.headers.accept ?? '').includes('application/vnd.npm.install-v1+json')
      for (const [name, versions] of Object.entries(PACKAGES)) {
        if (path === `/${name}`) {
          const latest = Object.keys(versions).at(-1) as string
          const modified = new Date(Math.max(...Object.values(versions).map((d) => d.getTime()))).toISOString()
          const doc = {
            name,
            'dist-tags': { latest },
            versions: Object.fromEntries(
              Object.keys(versions).map((v) => [
                v,
                { name, version: v, dist: { tarball: `https://registry.npmjs.org/${name}/-/${name}-${v}.tgz` } },
              ]),
            ),
            // The abbreviated document has no `time`, only when the package last changed.
            ...(abbreviated
              ? { modified }
              : {
                  time: {
                    modified,
                    ...Object.fromEntries(Object.entries(versions).map(([v, d]) => [v, d.toISOString()])),
                  },
                }),
          }
          res.writeHead(200, {
            'content-type': abbreviated ? 'application/vnd.npm.install-v1+json' : 'application/json',
          })
          return void res.end(JSON.stringify(doc))
        }
        for (const v of Object.keys(versions))
          if (path === `/${name}/-/${name}-${v}.tgz`) {
            res.writeHead(200, { 'content-type': 'application/octet-stream' })
            return void res.end(`tarball ${name}@${v}`)
          }
      }
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"Not found"}')
    },
    ca,
  )
  return { ...origin, ca }
}

const agent = (id: string, rest: string): string =>
  `  - { id: ${id}, token: ${tokenHash(`${id}-${TOKEN}`)}, ${rest} }\n`

/**
 * The registry and a proxy with `policy` (its groups and agents, from agent()) and `files` in its
 * directory (startPortcullis): `via` asks the
 * registry as an agent (curl, path as is), `explain` asks /api/explain.
 */
async function startGuarded(
  t: Test,
  policy: string,
  files: Record<string, string> = {},
  opts: { watch?: boolean; env?: NodeJS.ProcessEnv } = {},
) {
  const registry = await startRegistry(t)
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [registry.port], hosts: ['registry.npmjs.org'], caFile: registry.ca.certFile })}${policy}`,
    files,
    opts,
  )
  const url = (path: string): string => `https://registry.npmjs.org:${registry.port}${path}`
  const via = (id: string, path: string, extra: readonly string[] = ['-H', 'accept: application/json']) =>
    curl([
      '--path-as-is',
      '--proxy',
      `http://${id}:${id}-${TOKEN}@127.0.0.1:${pc.proxyPort}`,
      '--cacert',
      `${pc.dir}/ca.pem`,
      ...extra,
      url(path),
    ])
  const explain = async (id: string, path: string) =>
    (
      await adminCall<{ decision: string; reason: string; rule: string; detail?: string }>(
        pc.adminUrl,
        'GET',
        `/api/explain?agent=${id}&url=${encodeURIComponent(url(path))}`,
      )
    ).body
  return { registry, pc, via, explain }
}

t.test('every matching packages block counts: the strictest wins', async (t) => {
  const { pc, via, explain } = await startGuarded(
    t,
    `groups:
  cooldown:
    allow:
      - preset: npm
        packages: { min_age: 72h, min_age_exempt: [oldpkg] }
  blocklist:
    allow:
      - preset: npm
        packages: { deny: [event-stream], min_age: 24h }
agents:
${agent('both', 'groups: [cooldown, blocklist]')}${agent('own', 'groups: [cooldown], allow: [{ preset: npm, packages: { deny: [oldpkg] } }]')}`,
  )
  const denied = await via('both', '/event-stream')
  t.equal(denied.status, 403, "the second group's deny list holds")
  t.match(JSON.parse(denied.body), { reason: 'denied_package', detail: 'denied', package: 'event-stream' })
  const young = await via('both', '/oldpkg/-/oldpkg-2.0.0.tgz')
  t.equal(young.status, 403, "exempt from the first group's min_age, not from the second's")
  t.match(JSON.parse(young.body), { detail: 'too_new', version: '2.0.0' })
  t.match(JSON.parse(young.body).message, /younger than 24 h/, 'the min_age that holds it is named')
  const doc = await via('both', '/oldpkg')
  t.equal(doc.status, 200)
  t.same(Object.keys((JSON.parse(doc.body) as { versions: object }).versions), ['1.0.0'])
  t.equal((await via('both', '/oldpkg/-/oldpkg-1.0.0.tgz')).status, 200)

  const own = await via('own', '/oldpkg')
  t.equal(own.status, 403, "the agent's own deny list holds beside its group's block")
  t.match(JSON.parse(own.body), { detail: 'denied', package: 'oldpkg' })

  t.match(await explain('both', '/event-stream'), { reason: 'denied_package', detail: 'denied' }, 'explain agrees')
  t.match(await explain('own', '/oldpkg'), { reason: 'denied_package', detail: 'denied' })
  const rec = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.agent === 'both' && x.path === '/event-stream',
  )
  t.match(rec, { decision: 'deny', reason: 'denied_package', package: { name: 'event-stream' } })
})

t.test('an approval lifts the package guard only for the path as a decoding registry reads it too', async (t) => {
  const { registry, pc, via, explain } = await startGuarded(
    t,
    `groups:
  builders:
    allow:
      - preset: npm
        packages: { min_age: 72h, deny: [event-stream] }
agents:
${agent('ci', 'groups: [builders]')}`,
  )
  const young = await via('ci', '/oldpkg/-/oldpkg-2.0.0.tgz')
  t.equal(young.status, 403)
  t.match(JSON.parse(young.body), { detail: 'too_new' })
  const refused = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.path === '/oldpkg/-/oldpkg-2.0.0.tgz',
  )
  const made = await adminCall<{ id: string }>(pc.adminUrl, 'POST', '/api/approvals', {
    request_id: refused.id,
    scope: 'path-prefix',
  })
  t.equal(made.status, 201)

  const other = await via('ci', '/oldpkg/-/..%2F..%2Fevent-stream/-/event-stream-1.0.0.tgz')
  t.equal(other.status, 403, 'the approval of /oldpkg/-/… does not open another package by %2F and dot segments')
  t.equal(other.headers['x-portcullis-decision'], 'denied_package')
  t.notOk(
    registry.seen.some((r) => r.url.includes('event-stream')),
    'the registry never saw the request',
  )

  const approved = await via('ci', '/oldpkg/-/oldpkg-2.0.0.tgz')
  t.equal(approved.status, 200, 'the approved download passes')
  const rec = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.path === '/oldpkg/-/oldpkg-2.0.0.tgz' && x.decision === 'allow',
  )
  t.match(
    rec,
    { rule: `approval:${made.body.id}`, package: { registry: 'npm', name: 'oldpkg', version: '2.0.0' } },
    'recorded with the approval as its rule, and the package',
  )
  t.match(
    await explain('ci', '/oldpkg/-/oldpkg-2.0.0.tgz'),
    { decision: 'allow', rule: `approval:${made.body.id}` },
    'explain names it as the record does',
  )
})

t.test("one agent's abbreviated packument does not set another's publish times", async (t) => {
  const { via } = await startGuarded(
    t,
    `groups:
  loose:
    allow:
      - preset: npm
        # A version entry: oldpkg's metadata is read and rewritten, in the abbreviated form asked for.
        packages: { deny: [oldpkg@9.9.9] }
  strict:
    allow:
      - preset: npm
        packages: { min_age: 72h }
agents:
${agent('loose', 'groups: [loose]')}${agent('strict', 'groups: [strict]')}`,
  )
  const abbreviated = await via('loose', '/oldpkg', ['-H', 'accept: application/vnd.npm.install-v1+json'])
  t.equal(abbreviated.status, 200)
  t.notOk('time' in (JSON.parse(abbreviated.body) as object), 'the abbreviated form, without publish times')
  const old = await via('strict', '/oldpkg/-/oldpkg-1.0.0.tgz')
  t.equal(old.status, 200, 'a 30-day-old version is old enough, whatever the abbreviated document said')
  const young = await via('strict', '/oldpkg/-/oldpkg-2.0.0.tgz')
  t.equal(young.status, 403)
  t.match(JSON.parse(young.body).message, /published [01] h ago/)
})

t.test('an edit of a deny file alone takes effect: it is watched like the config', async (t) => {
  const denyFile = join(t.testdirName, 'deny-npm.txt')
  const { pc, via } = await startGuarded(
    t,
    `groups:
  builders:
    allow:
      - preset: npm
        packages: { deny_file: ${JSON.stringify(denyFile)} }
agents:
${agent('ci', 'groups: [builders]')}`,
    { 'deny-npm.txt': '# known bad\n' },
    { watch: true },
  )
  const generation = async (): Promise<number> =>
    ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { generation: number }).generation
  t.equal((await via('ci', '/event-stream')).status, 200)
  writeFileSync(denyFile, '# known bad\nevent-stream\n')
  t.ok(await until(async () => (await generation()) === 2, 5000), 'the edit reloads the config')
  const denied = await via('ci', '/event-stream')
  t.equal(denied.status, 403)
  t.match(JSON.parse(denied.body), { reason: 'denied_package', detail: 'denied', package: 'event-stream' })
})

/** The fields of a WebSocket handshake, as curl sends them with -H. */
const WEBSOCKET_HANDSHAKE = [
  '-H',
  'Connection: Upgrade',
  '-H',
  'Upgrade: websocket',
  '-H',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  '-H',
  'Sec-WebSocket-Version: 13',
  '-H',
  'accept: application/json',
]

t.test('a WebSocket handshake does not switch the package rules off, on any flow', async (t) => {
  const { registry, pc, via } = await startGuarded(
    t,
    `groups:
  builders:
    allow:
      - preset: npm
        packages: { min_age: 72h, deny: [event-stream] }
agents:
${agent('ci', 'groups: [builders]')}${agent('aud', 'groups: [builders], mode: audit')}`,
  )
  for (const path of ['/oldpkg/-/oldpkg-2.0.0.tgz', '/event-stream', '/oldpkg', '/oldpkg/-/oldpkg-1.0.0.tgz']) {
    const r = await via('ci', path, WEBSOCKET_HANDSHAKE)
    t.equal(r.status, 403, `${path}: refused, not relayed`)
    t.equal(r.headers['x-portcullis-decision'], 'denied_package')
    t.match(JSON.parse(r.body), { reason: 'denied_package', detail: 'websocket' })
    const rec = await pc.waitForRecord<DecisionRecord>((x) => x.event === 'decision' && x.path === path)
    t.match(rec, { decision: 'deny', reason: 'denied_package', package: { registry: 'npm' } }, 'the record names it')
  }
  t.notOk(
    registry.seen.some((r) => r.headers.upgrade !== undefined),
    'no upgrade reached the registry',
  )
  const audited = await via('aud', '/oldpkg/-/oldpkg-2.0.0.tgz', WEBSOCKET_HANDSHAKE)
  t.equal(audited.status, 200, 'audit mode blocks nothing')
  const rec = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.agent === 'aud' && x.path !== null,
  )
  t.match(rec, { decision: 'deny', would_deny: true, reason: 'denied_package', detail: 'websocket' })
})

t.test('a WebSocket handshake in plain HTTP to a registry under package rules is refused', async (t) => {
  const origin = await startHttpOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.end('tarball')
  })
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [origin.port], hosts: ['npm.plain.test'] })}groups:
  builders:
    allow:
      - host: npm.plain.test
        packages: { registry: npm, deny: [event-stream] }
agents:
${agent('ci', 'groups: [builders]')}`,
  )
  const r = await curl([
    '--proxy',
    `http://ci:ci-${TOKEN}@127.0.0.1:${pc.proxyPort}`,
    ...WEBSOCKET_HANDSHAKE,
    `http://npm.plain.test:${origin.port}/event-stream/-/event-stream-1.0.0.tgz`,
  ])
  t.equal(r.status, 403)
  t.match(JSON.parse(r.body), { reason: 'denied_package', detail: 'websocket' })
  t.equal(origin.seen.length, 0, 'nothing reached the registry')
})

const INJECTED = 'npm_injected-registry-secret-0123456789'

/** The registry under a min_age rule, and a host rule beside it that injects INJECTED as a Bearer token. */
const startInjecting = (t: Test) =>
  startGuarded(
    t,
    `groups:
  builders:
    allow:
      - preset: npm
        packages: { min_age: 72h }
      - host: registry.npmjs.org
        inject_headers: { Authorization: { env: PC_TEST_NPM_TOKEN, format: "Bearer {}" } }
agents:
${agent('ci', 'groups: [builders]')}`,
    {},
    { env: { PC_TEST_NPM_TOKEN: INJECTED } },
  )

t.test('an injected credential the registry quotes in metadata the package rules read is masked', async (t) => {
  const { via } = await startInjecting(t)
  const refused = await via('ci', '/echo')
  t.equal(refused.status, 401, "the registry's own 401, relayed")
  t.notMatch(refused.body, INJECTED, 'not in its body')
  t.match(refused.body, /bad credentials: Bearer \*{39}"/, 'masked, same length')
  t.notMatch(refused.headers['www-authenticate'] ?? '', INJECTED, 'nor in its fields')
  const doc = await via('ci', '/echo200')
  t.equal(doc.status, 200)
  t.notMatch(doc.body, INJECTED, 'not in the rewritten packument')
  t.equal((JSON.parse(doc.body) as { description: string }).description, `auth=Bearer ${'*'.repeat(INJECTED.length)}`)
})

t.test("the package rules' metadata fetch sends the injected credential in place of the client's", async (t) => {
  const { registry, via } = await startInjecting(t)
  // npm with a placeholder _authToken in .npmrc: the registry must see the injected one alone.
  const placeholder = ['-H', 'authorization: Bearer placeholder', '-H', 'accept: application/json']
  t.equal((await via('ci', '/oldpkg', placeholder)).status, 200, 'the packument')
  t.equal((await via('ci', '/oldpkg/-/oldpkg-1.0.0.tgz', placeholder)).status, 200, 'a tarball')
  const asked = registry.seen.filter((r) => r.url.startsWith('/oldpkg'))
  t.ok(asked.length >= 2)
  for (const r of asked) {
    t.equal(r.headers.authorization, `Bearer ${INJECTED}`, `${r.url}: the injected credential`)
    t.notOk(JSON.stringify(r.headers).includes('placeholder'), "and not the client's")
  }
})
