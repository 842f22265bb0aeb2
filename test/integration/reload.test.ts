import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { dirname, join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin, type OriginHandler } from '../helpers/origins.js'
import { basicAuth, curl } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import { configHead, groupYaml, TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'
import { openTunnel } from '../helpers/tunnel.js'

t.test('hot reload swaps the policy atomically and keeps the last good one on a bad edit', async (t) => {
  const origin = await startHttpOrigin(t)
  const tlsOrigin = await startHttpsOrigin(t, ['origin.test'])
  const policy = (hosts: string[]): string =>
    `${upstreamYaml([origin.port, tlsOrigin.port], `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}\n`)}${groupYaml(hosts.map((h) => `host: ${h}`))}`
  const pc = await startPortcullis(t, policy(['origin.test']), {}, { watch: true })
  const write = (body: string): void => pc.rewriteConfig(body)
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const health = async (): Promise<{ generation: number; config_error: string | null }> =>
    (await fetch(`${pc.adminUrl}/healthz`)).json() as Promise<{ generation: number; config_error: string | null }>

  t.equal(
    (await curl([...proxy, `http://other.test:${origin.port}/`])).headers['x-portcullis-decision'],
    'denied_no_rule',
  )

  // A tunnel to origin.test stays open across reloads that still allow it and closes on one that does not.
  const { socket } = await openTunnel(pc.proxyPort, `origin.test:${tlsOrigin.port}`)
  const tls = tlsConnect({ socket, servername: 'origin.test', ca: tlsOrigin.ca.certPem })
  await once(tls, 'secureConnect')
  tls.on('error', () => undefined)

  write(policy(['origin.test', 'other.test']))
  t.ok(await until(async () => (await health()).generation === 2), 'a file edit is picked up')
  t.equal((await curl([...proxy, `http://other.test:${origin.port}/`])).status, 200, 'the new rule applies')
  t.notOk(tls.destroyed, 'a still-allowed tunnel is untouched')

  write('groups: { g: { alow: [] } }\nagents: [')
  t.ok(await until(async () => (await health()).config_error !== null), 'a broken edit is reported on /healthz')
  const h = await health()
  t.equal(h.generation, 2, 'the last good policy stays in force')
  t.match(h.config_error, /portcullis\.yaml:\d+:\d+/)
  t.equal((await curl([...proxy, `http://other.test:${origin.port}/`])).status, 200)

  // What an editor that truncates before writing leaves for a moment (the file itself, not just a body).
  writeFileSync(pc.configFile, '')
  t.ok(
    await until(async () => /empty/.test((await health()).config_error ?? '')),
    'an emptied file is refused, not read as "no agents"',
  )
  t.equal((await health()).generation, 2)
  t.notOk(tls.destroyed, 'and closes nothing')
  for (const nothing of ['---\n', '~\n', 'null\n']) {
    writeFileSync(pc.configFile, nothing)
    t.ok(
      await until(async () => /empty/.test((await health()).config_error ?? '')),
      `${JSON.stringify(nothing)} is as empty`,
    )
  }
  // The first part of a file written in two (everything before `agents:`): every request would be refused.
  writeFileSync(pc.configFile, policy(['origin.test', 'other.test']).split('agents:')[0] as string)
  t.ok(
    await until(async () => /names no agents/.test((await health()).config_error ?? '')),
    'a file that names no agent is refused too',
  )
  t.equal((await health()).generation, 2)
  t.notOk(tls.destroyed, 'and closes nothing')

  write(policy(['other.test']))
  t.ok(await until(async () => (await health()).generation === 3), 'the watcher keeps working after a bad edit')
  t.equal((await health()).config_error, null)
  const started = Date.now()
  await until(() => tls.destroyed || socket.destroyed, 2000)
  t.ok(socket.destroyed, `a tunnel the new policy disallows is closed (${Date.now() - started} ms)`)
  t.equal(
    (await curl([...proxy, `http://origin.test:${origin.port}/`])).headers['x-portcullis-decision'],
    'denied_no_rule',
  )

  const viaApi = await adminCall<{ ok: boolean; generation: number }>(pc.adminUrl, 'POST', '/api/reload')
  t.match(viaApi, { status: 200, body: { ok: true, generation: 4 } })
})

t.test('a config reached through symlinks is reloaded when what they point at changes', async (t) => {
  const origin = await startHttpOrigin(t)
  const tlsOrigin = await startHttpsOrigin(t, ['origin.test'])
  const policy = (hosts: string[]): string =>
    `${upstreamYaml([origin.port, tlsOrigin.port], `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}\n`)}${groupYaml(hosts.map((h) => `host: ${h}`))}`
  const proxy = (pc: Portcullis): string[] => ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const generation = async (pc: Portcullis): Promise<number> =>
    ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { generation: number }).generation
  const text = (pc: Portcullis, hosts: string[]): string => `${configHead(pc.dir, policy(hosts))}\n${policy(hosts)}\n`

  await t.test('`ln -s real/portcullis.yaml portcullis.yaml`: edits in place and by rename', async (t) => {
    let real = ''
    const pc = await startPortcullis(
      t,
      policy(['origin.test']),
      {},
      {
        watch: true,
        place: (written) => {
          real = join(dirname(written), 'real', 'portcullis.yaml')
          mkdirSync(dirname(real))
          renameSync(written, real)
          symlinkSync('real/portcullis.yaml', written)
          return written
        },
      },
    )
    writeFileSync(real, text(pc, ['origin.test', 'other.test']))
    t.ok(await until(async () => (await generation(pc)) === 2), 'an edit in place of the target is picked up')
    t.equal((await curl([...proxy(pc), `http://other.test:${origin.port}/`])).status, 200, 'the new rule applies')
    writeFileSync(`${real}.tmp`, text(pc, ['other.test']))
    renameSync(`${real}.tmp`, real)
    t.ok(await until(async () => (await generation(pc)) === 3), 'so is a save that renames over the target')
  })

  await t.test('a Kubernetes ConfigMap: `..data` swapped to a new version', async (t) => {
    let version = 0
    /** What the kubelet does: a new timestamped directory, then `..data` renamed over to point at it. */
    const publish = (dir: string, body: string): void => {
      const named = `..v${++version}`
      mkdirSync(join(dir, named))
      writeFileSync(join(dir, named, 'portcullis.yaml'), body)
      symlinkSync(named, join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      if (version > 1) rmSync(join(dir, `..v${version - 1}`), { recursive: true })
    }
    const pc = await startPortcullis(
      t,
      policy(['origin.test', 'other.test']),
      {},
      {
        watch: true,
        place: (written) => {
          publish(dirname(written), readFileSync(written, 'utf8'))
          unlinkSync(written)
          symlinkSync('..data/portcullis.yaml', written)
          return written
        },
      },
    )
    const { socket } = await openTunnel(pc.proxyPort, `origin.test:${tlsOrigin.port}`)
    const tls = tlsConnect({ socket, servername: 'origin.test', ca: tlsOrigin.ca.certPem })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')

    publish(pc.dir, text(pc, ['other.test']))
    t.ok(await until(async () => (await generation(pc)) === 2), 'the swap is picked up')
    t.ok(await until(() => socket.destroyed, 2000), 'a tunnel the new version disallows is closed')
    t.equal(
      (await curl([...proxy(pc), `http://origin.test:${origin.port}/`])).headers['x-portcullis-decision'],
      'denied_no_rule',
      'the removed rule no longer admits',
    )
    publish(pc.dir, text(pc, ['origin.test', 'other.test']))
    t.ok(await until(async () => (await generation(pc)) === 3), 'and the next swap too, from the new version')
  })
})

t.test('a restart-only change keeps being reported until the process restarts', async (t) => {
  const origin = await startHttpOrigin(t)
  const policy = (hosts: string[], idle = 10000): string =>
    upstreamYaml([origin.port]).replace('idle_timeout_ms: 10000', `idle_timeout_ms: ${idle}`) +
    groupYaml(hosts.map((h) => `host: ${h}`))
  const pc = await startPortcullis(t, policy(['origin.test']))
  const restartNeeded = (): Array<{ keys: string[]; generation: number }> =>
    pc
      .logLines()
      .filter((l) => l.includes('PC_CONFIG_RESTART_NEEDED'))
      .map((l) => JSON.parse(l) as { keys: string[]; generation: number })
  pc.rewriteConfig(policy(['origin.test'], 20000))
  t.match(await adminCall(pc.adminUrl, 'POST', '/api/reload'), { status: 200, body: { generation: 2 } })
  t.ok(await until(() => restartNeeded().length === 1), 'the changed timeout is reported')
  pc.rewriteConfig(policy(['origin.test', 'other.test'], 20000))
  t.match(await adminCall(pc.adminUrl, 'POST', '/api/reload'), { status: 200, body: { generation: 3 } })
  t.ok(await until(() => restartNeeded().length === 2), 'and again after an unrelated edit')
  t.match(restartNeeded(), [
    { keys: ['upstream timeouts'], generation: 2 },
    { keys: ['upstream timeouts'], generation: 3 },
  ])
  const warnings = async (): Promise<string[]> =>
    ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { warnings: string[] }).warnings
  t.match(
    (await warnings()).filter((w) => w.includes('PC_CONFIG_RESTART_NEEDED')),
    [/restart: upstream timeouts \(PC_CONFIG_RESTART_NEEDED\)$/],
    '/healthz names the settings waiting for a restart',
  )
  pc.rewriteConfig(policy(['origin.test']))
  t.match(await adminCall(pc.adminUrl, 'POST', '/api/reload'), { status: 200, body: { generation: 4 } })
  t.notMatch((await warnings()).join('\n'), /PC_CONFIG_RESTART_NEEDED/, 'and stops once the file is back as started')
})

t.test('a reload closes connections the new policy would admit differently, not only by host', async (t) => {
  const tlsOrigin = await startHttpsOrigin(t, ['origin.test', 'paths.test'])
  const NEW_TOKEN = 'rotated-token-for-ci'
  const policy = (
    o: { originPaths?: boolean; tokenHash?: string; exempt?: boolean; pathsPin?: boolean } = {},
  ): string => `upstream:
  ports: [${tlsOrigin.port}]
  resolve: { origin.test: 127.0.0.1${o.pathsPin === false ? '' : ', paths.test: 127.0.0.1'} }
  allow_private: [${o.exempt === false ? '' : '127.0.0.1/32'}]
  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}
  idle_timeout_ms: 10000
groups:
  g:
    allow:
      - host: origin.test${o.originPaths ? '\n        paths: ["/only/**"]' : ''}
      - host: paths.test
        paths: ["/**"]
agents:
  - id: ci
    token: ${o.tokenHash ?? TOKEN_HASH}
    groups: [g]
`
  const pc = await startPortcullis(t, policy(), {}, { watch: true })
  const proxyCa = readFileSync(join(pc.dir, 'ca.pem'), 'utf8')
  const generation = async (): Promise<number> =>
    ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { generation: number }).generation
  const open = async (host: string, ca: string, token = TOKEN): Promise<TLSSocket> => {
    const { socket, head } = await openTunnel(pc.proxyPort, `${host}:${tlsOrigin.port}`, 'ci', token)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: host, ca })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')
    return tls
  }
  const reloadTo = async (body: string, gen: number): Promise<void> => {
    pc.rewriteConfig(body)
    t.ok(await until(async () => (await generation()) === gen), `generation ${gen}`)
  }

  const tunnel = await open('origin.test', tlsOrigin.ca.certPem)
  const intercepted = await open('paths.test', proxyCa)
  await reloadTo(policy({ originPaths: true }), 2)
  t.ok(await until(() => tunnel.destroyed, 1500), 'a spliced tunnel whose host now needs to be seen inside is closed')
  t.notOk(intercepted.destroyed, 'an intercepted connection to an unchanged host stays')

  await reloadTo(
    policy({ originPaths: true, tokenHash: `sha256:${createHash('sha256').update(NEW_TOKEN).digest('hex')}` }),
    3,
  )
  t.ok(await until(() => intercepted.destroyed, 1500), 'connections opened with a rotated-out token are closed')

  const rotated = `sha256:${createHash('sha256').update(NEW_TOKEN).digest('hex')}`
  const pinnedOne = await open('paths.test', proxyCa, NEW_TOKEN)
  await reloadTo(policy({ originPaths: true, tokenHash: rotated, pathsPin: false }), 4)
  t.ok(
    await until(() => pinnedOne.destroyed, 1500),
    'a connection whose address came from a pin that is gone is closed',
  )

  const fresh = await open('origin.test', proxyCa, NEW_TOKEN)
  await reloadTo(policy({ originPaths: true, tokenHash: rotated, pathsPin: false, exempt: false }), 5)
  t.ok(
    await until(() => fresh.destroyed, 1500),
    'a connection to an address no longer exempt from the private-address block is closed',
  )
})

t.test('a reload that refuses an answer in flight cuts it, plain or intercepted; idle ones stay', async (t) => {
  // `/slow…`: an answer that goes on (a byte every 100 ms, 10 s at most) until the client leaves.
  const slow: OriginHandler = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    if (!(req.url ?? '').startsWith('/slow')) return void res.end('ok\n')
    let sent = 0
    const timer = setInterval(() => (++sent > 100 ? res.end() : res.write('.')), 100)
    res.once('close', () => clearInterval(timer))
  }
  const plainOrigin = await startHttpOrigin(t, slow)
  const tlsOrigin = await startHttpsOrigin(t, ['paths.test'], slow)
  const policy = (paths: string): string => `${upstreamYaml(
    [plainOrigin.port, tlsOrigin.port],
    `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}`,
  )}
groups:
  g:
    allow:
      - host: origin.test
        paths: ${paths}
      - host: paths.test
        paths: ${paths}
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`
  const pc = await startPortcullis(t, policy('["/**"]'), {}, { watch: true })
  const proxyCa = readFileSync(join(pc.dir, 'ca.pem'), 'utf8')
  const intercepted = async (): Promise<TLSSocket> => {
    const { socket, head } = await openTunnel(pc.proxyPort, `paths.test:${tlsOrigin.port}`, 'ci', TOKEN)
    t.match(head, /^HTTP\/1\.1 200 /)
    const tls = tlsConnect({ socket, servername: 'paths.test', ca: proxyCa })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')
    return tls
  }
  const streamingInside = await intercepted()
  streamingInside.write(`GET /slow/feed HTTP/1.1\r\nHost: paths.test:${tlsOrigin.port}\r\n\r\n`)
  t.match(((await once(streamingInside, 'data')) as [Buffer])[0].toString('latin1'), /^HTTP\/1\.1 200 /)
  streamingInside.resume()
  const idleInside = await intercepted()
  idleInside.resume()
  const plain = netConnect(pc.proxyPort, '127.0.0.1')
  plain.on('error', () => undefined)
  await once(plain, 'connect')
  plain.write(
    `GET http://origin.test:${plainOrigin.port}/slow/feed HTTP/1.1\r\nHost: origin.test:${plainOrigin.port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
  )
  t.match(((await once(plain, 'data')) as [Buffer])[0].toString('latin1'), /^HTTP\/1\.1 200 /)
  plain.resume()

  pc.rewriteConfig(policy('["/only/**"]'))
  t.ok(await until(() => plain.destroyed, 3000), 'the plain answer the new policy refuses is cut')
  t.ok(await until(() => streamingInside.destroyed, 3000), 'so is the intercepted one')
  t.notOk(idleInside.destroyed, 'an idle intercepted connection to a host still allowed stays')
  idleInside.destroy()
})

t.test('a kept-alive plain-HTTP connection resending a token the reload rotated out is refused', async (t) => {
  const origin = await startHttpOrigin(t)
  const NEW_TOKEN = 'rotated-token-for-plain'
  const policy = (tokenHash: string): string => `${upstreamYaml([origin.port])}
groups:
  g:
    allow:
      - host: origin.test
agents:
  - id: ci
    token: ${tokenHash}
    groups: [g]
`
  const pc = await startPortcullis(t, policy(TOKEN_HASH), {}, { watch: true })
  const generation = async (): Promise<number> =>
    ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { generation: number }).generation
  const socket = netConnect(pc.proxyPort, '127.0.0.1')
  await once(socket, 'connect')
  t.teardown(() => socket.destroy())
  let buffered = ''
  socket.setEncoding('latin1').on('data', (c: string) => (buffered += c))
  /** One request on the kept-alive socket; resolves with the status of its response (content-length or chunked). */
  const exchange = async (path: string): Promise<number> => {
    buffered = ''
    socket.write(
      `GET http://origin.test:${origin.port}${path} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
    )
    const complete = (): boolean => {
      const end = buffered.indexOf('\r\n\r\n')
      if (end < 0) return false
      const length = /\r\ncontent-length: (\d+)/i.exec(buffered.slice(0, end))
      return length !== null ? buffered.length >= end + 4 + Number(length[1]) : buffered.endsWith('\r\n0\r\n\r\n')
    }
    t.ok(await until(complete, 3000), `a whole response to ${path}`)
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(buffered)?.[1])
  }
  t.equal(await exchange('/before'), 200)
  pc.rewriteConfig(policy(`sha256:${createHash('sha256').update(NEW_TOKEN).digest('hex')}`))
  t.ok(await until(async () => (await generation()) === 2), 'reloaded')
  if (!socket.destroyed)
    t.equal(await exchange('/after'), 407, 'the same header on the same connection no longer authenticates')
  const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/after')
  t.match(rec, { decision: 'deny', reason: 'denied_auth_invalid', agent: 'ci' })
})

t.test('a large policy is read off the event loop and applied, or refused with its lines', async (t) => {
  const origin = await startHttpOrigin(t)
  // Past the size read in place (config/load.ts IN_THREAD_CHARS): a thread checks it.
  const padding = Array.from({ length: 5000 }, (_, i) => `{ host: pad-${i}.example.test, methods: [GET, HEAD] }`)
  const policy = (hosts: string[], extra: string[] = []): string =>
    upstreamYaml([origin.port]) + groupYaml([...padding, ...extra, ...hosts.map((h) => `host: ${h}`)])
  const pc = await startPortcullis(t, policy(['origin.test']))
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const reload = (): Promise<{ status: number; body: { ok: boolean; generation: number; error?: string } }> =>
    adminCall(pc.adminUrl, 'POST', '/api/reload')
  const lineOf = (text: string, needle: string): number => text.slice(0, text.indexOf(needle)).split('\n').length

  const bigger = policy(['origin.test', 'other.test'])
  t.ok(bigger.length > 300 * 1024, `the file is ${bigger.length} bytes`)
  pc.rewriteConfig(bigger)
  t.match(await reload(), { status: 200, body: { ok: true, generation: 2 } })
  t.equal((await curl([...proxy, `http://other.test:${origin.port}/`])).status, 200, 'its new rule applies')

  // A schema problem and a compile problem far down the file: each named at its own line.
  for (const [bad, message] of [
    ['{ host: late.test, mehtods: [GET] }', /unknown key 'mehtods'/],
    ['preset: no-such-preset', /no-such-preset/],
  ] as const) {
    const text = policy(['origin.test'], [bad])
    pc.rewriteConfig(text)
    const refused = await reload()
    t.equal(refused.status, 422, `${bad}: refused`)
    t.equal(refused.body.generation, 2, 'the policy in force stays')
    const written = readFileSync(pc.configFile, 'utf8')
    t.match(refused.body.error, new RegExp(`portcullis\\.yaml:${lineOf(written, bad)}:\\d+: `), 'at its line')
    t.match(refused.body.error, message)
  }
  t.equal((await curl([...proxy, `http://other.test:${origin.port}/`])).status, 200, 'still the last good policy')
})
