import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, renameSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { createServer as createHttpServer } from 'node:http'
import { dirname, join } from 'node:path'
import t from 'tap'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl, proxiedGet } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN, TOKEN_HASH, writeConfig } from '../helpers/config.js'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { MAIN, ROOT, runPortcullis, spawnPortcullis, type CliOptions } from '../helpers/spawn-portcullis.js'
import { run, type RunResult } from '../helpers/spawn.js'

const BROKEN = join(ROOT, 'test/fixtures/configs/bad-unknown-key.yaml')

/** Run the built binary to completion (killed after timeoutMs, which then fails the assertions on code). */
/** A config with one agent, `a` (any loopback client), allowed by these `allow` entries (YAML lines). */
const agentAConfig = (dir: string, allow: readonly string[]): string =>
  writeConfig(
    dir,
    `agents:\n  - id: a\n    source_cidrs: [127.0.0.1/32]\n    allow:\n${allow.map((l) => `      ${l}\n`).join('')}`,
  )

const portcullis = (args: readonly string[], opts: CliOptions = {}): Promise<RunResult> =>
  runPortcullis(args, { timeoutMs: 15_000, ...opts })

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} does not exist: run \`npm run build\` first (npm test does)`)
} else {
  t.test('every command answers --help with its usage line, exit 0, and does nothing else', async (t) => {
    for (const [verb, line] of [
      ['start', /^ {2}start +\[--config F\]/m],
      ['check', /^ {2}check +\[--config F\] \[--tests F\]/m],
      ['sandbox', /--proxy HOST:PORT\] \[--json\]\n +\| revoke ID \[--reason TEXT\] \[--by NAME\] \| list \[--json\]/],
      ['replay', /--until T\] \[--agent A\]/],
      ['ca', /init\|show\|path\|bundle \[--out F\]/],
      ['blocked', /\[--follow\] \[--json\]\n +\[--admin URL\] \[--config F\]/],
      ['approve', /\[--sandbox-only\]\n +\[--json\] \[--admin URL\] \[--config F\]/],
      ['approvals', /^ {2}approvals \[--revoke ID \[--by NAME\]\] \[--json\] \[--admin URL\] \[--config F\]$/m],
    ] as const) {
      const r = await portcullis([verb, '--help'])
      t.equal(r.code, 0, `${verb} --help: ${r.stderr}`)
      t.match(r.stdout, line, verb)
      t.match(r.stdout, /Exit codes: 0 success/)
      t.match(r.stdout, /--admin URL/, 'and how the commands that ask a running instance find it')
    }
  })

  t.test('check', async (t) => {
    t.test('the shipped default config is valid and its summary lists agent local', async (t) => {
      const r = await portcullis(['check'])
      t.equal(r.code, 0, r.stderr)
      t.match(r.stdout, /config\/portcullis\.yaml: OK/)
      t.match(r.stdout, /^ {2}local: identified by source 127\.0\.0\.1\/32; mode enforce$/m)
      t.equal(r.stderr, '')
    })

    t.test(
      'workers > 1 without Redis is refused as start refuses it (PC_ERR_WORKERS_NEED_REDIS, exit 2)',
      async (t) => {
        const agents = 'agents: [ { id: a, source_cidrs: [127.0.0.1/32] } ]\n'
        const alone = await portcullis(['check', '--config', writeConfig(t.testdir(), `workers: 2\n${agents}`)])
        t.equal(alone.code, 2, alone.stdout)
        t.match(alone.stderr, /workers: 2 needs telemetry\.redis\.url.*\(PC_ERR_WORKERS_NEED_REDIS\)/)
        const shared = await portcullis([
          'check',
          '--config',
          writeConfig(t.testdir(), `workers: 2\ntelemetry: { redis: { url: "redis://127.0.0.1:1" } }\n${agents}`),
        ])
        t.equal(shared.code, 0, `with Redis it is fine: ${shared.stderr}`)
      },
    )

    t.test('a valid policy that will not do what was meant is flagged: no agents, overlapping sources', async (t) => {
      const dir = t.testdir()
      const empty = await portcullis(['check', '--config', writeConfig(dir, '# nothing yet\n')])
      t.equal(empty.code, 0, 'still valid')
      t.match(empty.stdout, /^warning: no agents: every request is refused \(407\).*\(PC_NO_AGENTS\)$/m)
      const overlap = await portcullis([
        'check',
        '--config',
        writeConfig(
          t.testdir(),
          'agents:\n  - { id: a, source_cidrs: [127.0.0.0/8] }\n  - { id: b, source_cidrs: [127.0.0.1/32] }\n',
        ),
      ])
      t.match(
        overlap.stdout,
        /^warning: agents a \(127\.0\.0\.0\/8\) and b \(127\.0\.0\.1\/32\) both match .*a, the first in config order.*\(PC_SOURCE_OVERLAP\)$/m,
      )
      const apart = await portcullis([
        'check',
        '--config',
        writeConfig(
          t.testdir(),
          'agents:\n  - { id: a, source_cidrs: [127.0.0.1/32] }\n  - { id: b, source_cidrs: [127.0.0.2/32] }\n',
        ),
      ])
      t.notMatch(apart.stdout, /warning/, 'apart: no warning')
      const tokened = await portcullis([
        'check',
        '--config',
        writeConfig(
          t.testdir(),
          `agents:\n  - { id: a, source_cidrs: [127.0.0.0/8] }\n  - { id: b, token: ${TOKEN_HASH}, source_cidrs: [127.0.0.1/32] }\n`,
        ),
      ])
      t.notMatch(tokened.stdout, /PC_SOURCE_OVERLAP/, 'an agent with a token is never chosen by source: no overlap')
      const template = await portcullis([
        'check',
        '--config',
        writeConfig(
          t.testdir(),
          'agents:\n  - { id: a, source_cidrs: [127.0.0.0/8] }\n  - { id: b, sandboxes: true, source_cidrs: [127.0.0.1/32] }\n',
        ),
      ])
      t.notMatch(template.stdout, /PC_SOURCE_OVERLAP/, 'nor is a sandbox template')
      const never = await portcullis([
        'check',
        '--config',
        writeConfig(
          t.testdir(),
          'tls: { intercept: never }\ngroups: { g: { allow: [ { host: a.test, paths: ["/x/**"] }, { host: b.test } ] } }\nagents:\n  - { id: a, source_cidrs: [127.0.0.1/32], groups: [g] }\n',
        ),
      ])
      t.equal(never.code, 0, 'still valid')
      t.match(
        never.stdout,
        /^warning: rule g\.allow\[0\] limits methods or paths.*tls\.intercept is never.*\(PC_NEEDS_INTERCEPTION\)$/m,
      )
      t.notMatch(never.stdout, /g\.allow\[1\]/, 'a host-level rule tunnels and is not named')
    })

    t.test('an upstream.ca_file start could not read is refused by check too (exit 2)', async (t) => {
      const dir = t.testdir({ 'not-a-cert.pem': 'hello\n' })
      for (const caFile of [join(dir, 'missing.pem'), join(dir, 'not-a-cert.pem')]) {
        const r = await portcullis([
          'check',
          '--config',
          writeConfig(dir, `upstream: { ca_file: ${JSON.stringify(caFile)} }\n`),
        ])
        t.equal(r.code, 2, caFile)
        t.match(r.stderr, /upstream\.ca_file .* cannot be read as PEM certificates \(PC_ERR_CA_UNREADABLE\)/)
      }
    })

    t.test('a broken config exits 2 with file:line:col and the key', async (t) => {
      const r = await portcullis(['check', '--config', BROKEN])
      t.equal(r.code, 2)
      t.equal(r.stdout, '')
      t.match(r.stderr, `${BROKEN}:3:5: groups.builders.alow: unknown key 'alow'`)
      t.match(r.stderr, `${BROKEN}: 1 error(s)`)
    })

    t.test('PORTCULLIS_CONFIG is read when --config is absent', async (t) => {
      const r = await portcullis(['check'], { env: { PORTCULLIS_CONFIG: BROKEN } })
      t.equal(r.code, 2)
      t.match(r.stderr, `${BROKEN}:3:5: groups.builders.alow`)
    })

    t.test('a missing config file is a config error (exit 2)', async (t) => {
      const r = await portcullis(['check', '--config', join(t.testdir(), 'nope.yaml')])
      t.equal(r.code, 2)
      t.match(r.stderr, /PC_ERR_CONFIG_UNREADABLE/)
    })
  })

  t.test('explain', async (t) => {
    t.test('an allowed npm GET prints the rule and that it is intercepted (exit 0)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'local', 'https://registry.npmjs.org/x'])
      t.equal(r.code, 0, r.stderr)
      t.match(r.stdout, /^decision: allow$/m)
      t.match(r.stdout, /^reason: allowed$/m)
      t.match(r.stdout, /^rule: developers\.allow\[0\]$/m)
      // The binary prints `connect: intercept (rule)`; the brief expected the word "intercepted".
      t.match(r.stdout, /^connect: intercept\b.*developers\.allow\[0\]/m)
    })

    t.test('--method PUT is denied_method (exit 1)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'local', '--method', 'PUT', 'https://registry.npmjs.org/x'])
      t.equal(r.code, 1, r.stderr)
      t.match(r.stdout, /^decision: deny$/m)
      t.match(r.stdout, /^reason: denied_method$/m)
      t.match(r.stdout, /^rule: developers\.allow\[0\]$/m)
    })

    t.test('a URL the proxy refuses is refused here too, as /api/explain refuses it (exit 2)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'local', 'http://registry.npmjs.org\\@evil.test/'])
      t.equal(r.code, 2)
      t.match(r.stderr, /userinfo/)
    })

    t.test('a missing --agent or URL is named, not only the usage line (exit 2)', async (t) => {
      const noAgent = await portcullis(['explain', 'https://registry.npmjs.org/x'])
      t.equal(noAgent.code, 2)
      t.match(noAgent.stderr, /^portcullis explain: --agent A is missing/)
      const noUrl = await portcullis(['explain', '--agent', 'local'])
      t.equal(noUrl.code, 2)
      t.match(noUrl.stderr, /^portcullis explain: name the URL to explain/)
    })

    t.test('an unknown agent is a usage error (exit 2)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'nobody', 'https://registry.npmjs.org/x'])
      t.equal(r.code, 2)
      t.match(r.stderr, /unknown agent 'nobody'/)
      t.equal(r.stdout, '')
    })

    // explain never dials (no network I/O); the address is still one the rules reserve for private-block
    // tests, 127.0.0.2, which no allow_private here exempts. The classifier's ranges (169.254/16 and the
    // rest) are unit tests in test/unit/net/address-class.test.ts.
    t.test('a private address is denied offline and at once (exit 1)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'local', 'http://127.0.0.2/'])
      t.equal(r.code, 1, r.stderr)
      t.match(r.stdout, /^decision: deny$/m)
      t.match(r.stdout, /^reason: denied_no_rule$/m)
      t.match(r.stdout, /^address: 127\.0\.0\.2 loopback \(blocked\)$/m)
      // Process start-up dominates; any network wait (connect timeout 10 s) would blow this bound.
      t.ok(r.ms < 5000, `returned in ${r.ms} ms`)
    })

    t.test('even a rule naming a private address gives denied_private_address (exit 1)', async (t) => {
      const dir = t.testdir()
      const file = agentAConfig(dir, ['- host: 127.0.0.2'])
      const r = await portcullis(['explain', '--config', file, '--agent', 'a', 'http://127.0.0.2/latest/meta-data/'])
      t.equal(r.code, 1, r.stderr)
      t.match(r.stdout, /^reason: denied_private_address$/m)
      t.ok(r.ms < 5000, `returned in ${r.ms} ms`)
    })

    t.test('package rules judge a registry path by name, as the proxy does (exit 1)', async (t) => {
      const file = agentAConfig(t.testdir(), [
        '- preset: npm',
        '  packages: { deny: [event-stream, "@evil/*"], min_age: 72h }',
      ])
      const denied = await portcullis([
        'explain',
        '--config',
        file,
        '--agent',
        'a',
        'https://registry.npmjs.org/event-stream',
      ])
      t.equal(denied.code, 1, denied.stderr)
      t.match(denied.stdout, /^reason: denied_package$/m)
      t.match(denied.stdout, /^detail: denied$/m)
      t.match(denied.stdout, /^rule: agents\.a\.allow\[0\]$/m)
      const scoped = await portcullis([
        'explain',
        '--config',
        file,
        '--agent',
        'a',
        'https://registry.npmjs.org/@evil%2fx/-/x-1.0.0.tgz',
      ])
      t.equal(scoped.code, 1, 'a tarball of a denied scope')
      const odd = await portcullis([
        'explain',
        '--config',
        file,
        '--agent',
        'a',
        'https://registry.npmjs.org/event-stream%252f',
      ])
      t.match(odd.stdout, /^detail: unparseable_path$/m)
      const ok = await portcullis(['explain', '--config', file, '--agent', 'a', 'https://registry.npmjs.org/left-pad'])
      t.equal(ok.code, 0, 'min_age is judged at request time, from the registry’s publish times')
    })

    t.test('GitHub API writes the proxy always refuses are refused offline too (exit 1)', async (t) => {
      const file = agentAConfig(t.testdir(), [
        '- github: { repos: [acme/widgets], access: write, api: { pulls: create } }',
      ])
      const explain = (method: string, url: string) =>
        portcullis(['explain', '--config', file, '--agent', 'a', '--method', method, url])
      const merge = await explain('PUT', 'https://api.github.com/repos/acme/widgets/pulls/1/merge')
      t.equal(merge.code, 1, merge.stderr)
      t.match(merge.stdout, /^reason: denied_repo_write$/m)
      t.match(merge.stdout, /^detail: merge$/m)
      const drop = await explain('DELETE', 'https://api.github.com/repos/acme/widgets')
      t.match(drop.stdout, /^detail: repo_delete$/m, 'deleting the repo')
      const pr = await explain('POST', 'https://api.github.com/repos/acme/widgets/pulls')
      t.equal(pr.code, 0, 'opening a pull request: the head branch in its body is judged on the wire')
    })

    t.test('a missing URL is a usage error (exit 2)', async (t) => {
      const r = await portcullis(['explain', '--agent', 'local'])
      t.equal(r.code, 2)
      t.match(r.stderr, /usage: portcullis explain/)
    })
  })

  t.test('token new prints a token whose sha256: form token hash reproduces', async (t) => {
    const r = await portcullis(['token', 'new'])
    t.equal(r.code, 0, r.stderr)
    const token = /^token: (\S+)$/m.exec(r.stdout)?.[1]
    const hash = /^config: (sha256:[0-9a-f]{64})$/m.exec(r.stdout)?.[1]
    t.ok(token && token.length >= 20, 'a long random token')
    t.ok(hash, 'its sha256: form')
    const h = await portcullis(['token', 'hash', token ?? ''])
    t.equal(h.code, 0, h.stderr)
    t.equal(h.stdout.trim(), hash)
    const withConfig = await portcullis(['token', 'hash', '--config', 'config/portcullis.yaml', token ?? ''])
    t.equal(withConfig.stdout.trim(), hash, '--config is not mistaken for the token')
    const again = await portcullis(['token', 'new'])
    t.not(/^token: (\S+)$/m.exec(again.stdout)?.[1], token, 'tokens are random')
  })

  t.test('ca init|path|show with a temp config', async (t) => {
    const dir = t.testdir()
    const file = writeConfig(dir, 'agents: []')
    const certFile = join(dir, 'ca.pem')
    const keyFile = join(dir, 'ca-key.pem')

    const path = await portcullis(['ca', 'path', '--config', file])
    t.equal(path.code, 0, path.stderr)
    t.equal(path.stdout.trim(), certFile)
    t.notOk(existsSync(certFile), '`ca path` creates nothing')
    const early = await portcullis(['ca', 'show', '--config', file])
    t.equal(early.code, 1, '`ca show` before any CA exists is a failed command')
    t.match(early.stderr, /no CA at .* yet; `portcullis ca init`/)
    t.notOk(existsSync(certFile), '`ca show` creates nothing')

    const init = await portcullis(['ca', 'init', '--config', file])
    t.equal(init.code, 0, init.stderr)
    t.match(init.stdout, /^created: /)
    t.equal(statSync(keyFile).mode & 0o777, 0o600, 'the key file is 0600')
    const pem = readFileSync(certFile, 'utf8')
    const x509 = new X509Certificate(pem)
    t.equal(x509.ca, true, 'basicConstraints CA:true')
    const text = (await run('openssl', ['x509', '-noout', '-text', '-in', certFile], { timeoutMs: 15_000 })).stdout
    t.match(text, /CA:TRUE/)
    t.match(text, /Certificate Sign/, 'keyUsage keyCertSign')
    t.match(init.stdout, x509.fingerprint256, 'init prints the fingerprint')

    const again = await portcullis(['ca', 'init', '--config', file])
    t.equal(again.code, 0)
    t.match(again.stdout, /^exists: /)
    t.equal(readFileSync(certFile, 'utf8'), pem, 'a second init keeps the CA')

    const show = await portcullis(['ca', 'show', '--config', file])
    t.equal(show.code, 0, show.stderr)
    t.ok(show.stdout.startsWith(pem), 'show prints the PEM')
    t.match(show.stdout, `# SHA-256 fingerprint: ${x509.fingerprint256}`)
    t.match(show.stdout, `NODE_EXTRA_CA_CERTS=${certFile}`)
    const bundleFile = join(dirname(certFile), 'ca-bundle.pem')
    for (const tool of ['CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'PIP_CERT', 'SSL_CERT_FILE'])
      t.match(
        show.stdout,
        `${tool}=${bundleFile}`,
        `${tool} is given the bundle: one CA file replaces the system roots`,
      )
    t.match(show.stdout, `npm config set cafile ${bundleFile}`)
    t.ok(show.stdout.endsWith('\n') && !show.stdout.endsWith('# \n'), 'ends with a complete line')

    renameSync(keyFile, `${keyFile}.away`)
    const keyless = await portcullis(['ca', 'show', '--config', file])
    t.equal(keyless.code, 0, `show needs only the certificate, not the key: ${keyless.stderr}`)
    renameSync(`${keyFile}.away`, keyFile)

    const bundle = await portcullis(['ca', 'bundle', '--config', file])
    t.equal(bundle.code, 0, bundle.stderr)
    t.equal(bundle.stdout.trim(), join(dir, 'ca-bundle.pem'))
    const bundled = readFileSync(join(dir, 'ca-bundle.pem'), 'utf8')
    t.ok(bundled.trimEnd().endsWith(pem.trim()), 'the Portcullis CA is in the bundle, last')
    t.ok((bundled.match(/BEGIN CERTIFICATE/g) ?? []).length > 50, 'with the system roots before it')
    // A client given only the bundle trusts the CA (and would trust public servers through the roots).
    const ctx = createSecureContext({ ca: bundled })
    t.ok(ctx, 'the bundle parses as a CA file')

    const bad = await portcullis(['ca', 'frob', '--config', file])
    t.equal(bad.code, 2)
    const nowhere = await portcullis(['ca', 'bundle', '--config', file, '--out', join(dir, 'missing', 'b.pem')])
    t.equal(nowhere.code, 2)
    t.match(nowhere.stderr, /cannot write [^\n]*b\.pem: ENOENT/)
    t.notMatch(nowhere.stderr, /internal error/)
    const misplaced = await portcullis(['ca', 'init', '--config', file, '--out', join(dir, 'x.pem')])
    t.equal(misplaced.code, 2, '--out is for ca bundle only')
    t.match(misplaced.stderr, /--out is for `ca bundle`/)
  })

  t.test('start serves, logs PC_STARTED, proxies, and exits 0 on SIGTERM', async (t) => {
    const origin = await startHttpOrigin(t)
    const dir = t.testdir()
    const file = writeConfig(
      dir,
      `upstream:
  ports: [${origin.port}]
  resolve: { origin.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  connect_timeout_ms: 2000
agents:
  - id: local
    source_cidrs: [127.0.0.1/32]
    allow:
      - host: origin.test
`,
    )
    const pc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: 'cli-test-admin-token-0123456789' })
    const { child, exited, waitLine, parsed } = pc
    const started = await waitLine((r) => r.code === 'PC_STARTED')
    const proxy = String(started.proxy)
    t.match(proxy, /^127\.0\.0\.1:[1-9][0-9]*$/, 'the real ephemeral port is logged')
    t.match(String(started.admin), /^127\.0\.0\.1:[1-9][0-9]*$/)

    const r = await curl(['--proxy', `http://${proxy}`, `http://origin.test:${origin.port}/via-cli`])
    t.equal(r.status, 200, r.stderr)
    t.match(r.body, /origin saw GET \/via-cli/)
    t.equal(origin.seen.at(-1)?.url, '/via-cli')
    const rec = await waitLine((x) => x.event === 'decision' && x.path === '/via-cli')
    t.match(rec, { decision: 'allow', reason: 'allowed', rule: 'agents.local.allow[0]', agent: 'local' })

    child.kill('SIGTERM')
    const [code, signal] = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no exit within 10 s of SIGTERM; stderr: ${pc.stderr()}`)), 10_000).unref(),
      ),
    ])
    t.equal(signal, null)
    t.equal(code, 0, pc.stderr())
    t.ok(
      parsed().some((x) => x.code === 'PC_STOPPING' && x.signal === 'SIGTERM'),
      'logs PC_STOPPING',
    )
  })

  t.test('IPv6 listen addresses are logged and summarised in brackets', async (t) => {
    const file = writeConfig(
      t.testdir(),
      `listen: { host: "::1", port: 0 }
admin: { host: "::1", port: 0 }
agents: [ { id: local, source_cidrs: ["::1/128"], allow: [ { host: origin.test } ] } ]
`,
    )
    const summary = await portcullis(['check', '--config', file])
    t.match(summary.stdout, /^listen: \[::1\]:0; admin: \[::1\]:0$/m, summary.stderr)
    const pc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: 'cli-test-admin-token-0123456789' })
    const started = await pc.waitLine((r) => r.code === 'PC_STARTED')
    t.match(String(started.proxy), /^\[::1\]:[1-9][0-9]*$/)
    t.match(String(started.admin), /^\[::1\]:[1-9][0-9]*$/)
    const health = await fetch(`http://${String(started.admin)}/healthz`)
    t.equal(health.status, 200, 'and the logged admin address is one a URL can hold')
  })

  t.test('SIGTERM drains: requests in flight finish, new connections are refused, then it exits 0', async (t) => {
    // The origin answers /slow after 1.5 s.
    const origin = await startHttpOrigin(t, (req, res) => {
      const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain' }).end(`done ${req.url}\n`)
      if (req.url === '/slow') setTimeout(answer, 1500).unref()
      else answer()
    })
    const file = writeConfig(
      t.testdir(),
      `upstream: { ports: [${origin.port}], resolve: { origin.test: 127.0.0.1 }, allow_private: [127.0.0.1/32] }
agents: [ { id: local, source_cidrs: [127.0.0.1/32], allow: [ { host: origin.test } ] } ]
`,
    )
    const pc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: 'cli-test-admin-token-0123456789' })
    const proxy = String((await pc.waitLine((r) => r.code === 'PC_STARTED')).proxy)
    const inFlight = curl(['--proxy', `http://${proxy}`, `http://origin.test:${origin.port}/slow`])
    await pc.waitLine((x) => x.event === 'decision' && x.path === '/slow')
    const stoppedAt = Date.now()
    pc.child.kill('SIGTERM')
    await pc.waitLine((x) => x.code === 'PC_STOPPING')
    const late = await curl(['--proxy', `http://${proxy}`, '--max-time', '2', `http://origin.test:${origin.port}/late`])
    t.not(late.exitCode, 0, 'no new connection is accepted once stopping')
    const r = await inFlight
    t.equal(r.status, 200, `the request in flight got its answer (${r.stderr})`)
    t.match(r.body, /done \/slow/)
    const [code] = await pc.exited
    t.equal(code, 0)
    t.ok(
      Date.now() - stoppedAt < 7000,
      'and it exits as soon as nothing is left in flight, well before the drain limit',
    )
  })

  t.test('SIGTERM cuts a CONNECT still waiting for its ClientHello at the drain deadline', async (t) => {
    const { connect } = await import('node:net')
    // Any listener will do: the tunnel is dialled before the 200, and the client then sends nothing.
    const origin = await startHttpOrigin(t)
    const headerTimeoutMs = 120_000
    const file = writeConfig(
      t.testdir(),
      `upstream: { ports: [443], resolve: { a.example.com: 127.0.0.1 }, allow_private: [127.0.0.1/32], header_timeout_ms: ${headerTimeoutMs} }
agents: [ { id: local, source_cidrs: [127.0.0.1/32], allow: [ { host: a.example.com } ] } ]
`.replace('ports: [443]', `ports: [${origin.port}]`),
    )
    const pc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: 'cli-test-admin-token-0123456789' })
    const proxy = String((await pc.waitLine((r) => r.code === 'PC_STARTED')).proxy)
    const client = connect(Number(proxy.split(':').at(-1)), '127.0.0.1')
    t.teardown(() => void client.destroy())
    client.write(`CONNECT a.example.com:${origin.port} HTTP/1.1\r\nHost: a.example.com:${origin.port}\r\n\r\n`)
    const [established] = (await once(client, 'data')) as [Buffer]
    t.match(established.toString('latin1'), /^HTTP\/1\.1 200 /, 'the tunnel is open and waits for a ClientHello')
    const clientClosed = once(client, 'close')
    const stoppedAt = Date.now()
    pc.child.kill('SIGTERM')
    const [code] = await Promise.race([
      pc.exited,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`still running ${headerTimeoutMs / 2} ms after SIGTERM; stderr: ${pc.stderr()}`)),
          headerTimeoutMs / 2,
        ).unref(),
      ),
    ])
    t.equal(code, 0, pc.stderr())
    t.ok(Date.now() - stoppedAt < headerTimeoutMs / 2, 'it exits at the drain deadline, not at header_timeout_ms')
    await clientClosed
    t.pass('the idle tunnel was cut')
  })

  t.test('an admin port already in use stops start-up with PC_ERR_LISTEN (exit 2), proxy port and all', async (t) => {
    const { createServer } = await import('node:net')
    const blocker = createServer().listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    t.teardown(() => new Promise<void>((r) => blocker.close(() => r())))
    const port = (blocker.address() as { port: number }).port
    const file = writeConfig(
      t.testdir(),
      'agents: [ { id: local, source_cidrs: [127.0.0.1/32], allow: [ { host: origin.test } ] } ]',
    )
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(
        'admin: { host: 127.0.0.1, port: 0 }',
        `admin: { host: 127.0.0.1, port: ${port} }`,
      ),
    )
    const pc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: 'cli-test-admin-token-0123456789' })
    const [code] = await Promise.race([
      pc.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('still running 10 s after the admin listen failed')), 10_000).unref(),
      ),
    ])
    t.equal(code, 2)
    t.match(pc.stderr(), /PC_ERR_LISTEN/)
  })

  t.test('an unknown verb exits 2 with the usage', async (t) => {
    const r = await portcullis(['frobnicate'])
    t.equal(r.code, 2)
    t.match(r.stderr, /unknown command 'frobnicate'/)
    t.match(r.stderr, /usage: portcullis/)
  })

  t.test('approve names what is wrong with its arguments', async (t) => {
    const scope = await portcullis(['approve', '01JAAAAAAAAAAAAAAAAAAAAAAA', '--scope', 'bogus'])
    t.equal(scope.code, 2)
    t.match(scope.stderr, /--scope 'bogus' is not one of exact, host, path-prefix/)
    const none = await portcullis(['approve'])
    t.equal(none.code, 2)
    t.match(none.stderr, /name the REQUEST_ID/)
  })

  t.test('the admin verbs reach an admin.port that browsers (and fetch) refuse, such as 6665', async (t) => {
    // A stand-in admin API on a "bad port" of the fetch spec (the tests run in their own network namespace).
    const seen: string[] = []
    const server = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ approvals: [] }))
    })
    server.listen(6665, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => server.close())
    const r = await portcullis(['approvals', '--admin', 'http://127.0.0.1:6665'], {
      env: { PORTCULLIS_ADMIN_TOKEN: 'a-token-for-the-stand-in-admin-api-0123' },
    })
    t.equal(r.code, 0, r.stderr)
    t.same(seen, ['GET /api/approvals Bearer a-token-for-the-stand-in-admin-api-0123'])
  })

  t.test('--version, -V and version print the package version', async (t) => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    for (const arg of ['--version', '-V', 'version']) {
      const r = await portcullis([arg])
      t.equal(r.code, 0, arg)
      t.equal(r.stdout, `portcullis ${version}\n`, arg)
    }
  })

  t.test('no verb prints the usage and exits 2', async (t) => {
    const r = await portcullis([])
    t.equal(r.code, 2)
    t.match(r.stdout, /usage: portcullis/)
  })

  t.test('blocked lists denials with the whole host, never cut where an attacker could hide', async (t) => {
    const origin = await startHttpOrigin(t)
    const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
    const host = `registry.npmjs.org.${'a'.repeat(60)}.attacker-owned.example`
    const denied = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://${host}/x`])
    t.equal(denied.headers['x-portcullis-decision'], 'denied_no_rule')
    const env = { PORTCULLIS_ADMIN_TOKEN: pc.adminToken }
    const table = await portcullis(['blocked', '--admin', pc.adminUrl], { env })
    t.equal(table.code, 0, table.stderr)
    t.match(table.stdout, /^TIME\s+AGENT\s+METHOD\s+HOST\s+PATH\s+REASON/m)
    t.ok(table.stdout.includes(host), 'the host is printed whole')
    t.match(table.stdout, denied.headers['x-portcullis-request-id'] ?? 'no id')
    const json = await portcullis(['blocked', '--admin', pc.adminUrl, '--json'], { env })
    t.match(JSON.parse(json.stdout.trim().split('\n').at(-1) ?? '{}'), { host, reason: 'denied_no_rule' })

    // A flood of one denial folds (20 a second recorded, the rest one record): its row says how many it is.
    const flood = await Promise.all(
      Array.from({ length: 40 }, () => proxiedGet(pc.proxyPort, `http://flood.example/same`)),
    )
    t.ok(flood.every((a) => a.status === 403))
    const folded = await pc.waitForRecord((r) => r.event === 'decision' && (r.repeats ?? 0) > 0, 5000)
    const rows = await portcullis(['blocked', '--admin', pc.adminUrl, '--host', 'flood.example'], { env })
    t.match(rows.stdout, new RegExp(`denied_no_rule ×${Number((folded as { repeats?: number }).repeats) + 1}`))
  })
}
