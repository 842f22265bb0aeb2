import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ProxyAgent, fetch as undiciFetch } from 'undici'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { run, type RunResult } from '../helpers/spawn.js'
import { connectTunnel } from '../helpers/tunnel.js'
import { basicAuth } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * SPEC §2: most clients drop the body of a refused CONNECT and print only "403". For an agent that
 * trusts the CA, a denied CONNECT is answered inside TLS: every client shows the reason and the id.
 */

/** A client run to completion (bounded); its stdout and stderr together, as a user would read them. */
function runWith(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> {
  return run(cmd, args, { env, cwd, timeoutMs: 60_000 })
}

t.test('denied CONNECTs explained inside TLS', async (t) => {
  const origin = await startHttpsOrigin(t, ['allowed.test'])
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [443, ${origin.port}]
  resolve: { allowed.test: 127.0.0.1, denied.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(origin.ca.certFile)}
groups:
  trusting:
    allow:
      - host: allowed.test
        methods: [GET]
  plain:
    allow:
      - host: allowed.test
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [trusting] }
  - { id: tunneller, token: ${TOKEN_HASH}, groups: [plain] }
`,
  )
  const caFile = join(pc.dir, 'ca.pem')
  const deniedUrl = `https://denied.test:${origin.port}/simple/evil-pkg/`
  const connectRecord = async (pc: Portcullis, agent: string): Promise<DecisionRecord> =>
    pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.agent === agent && x.host === 'denied.test',
    )

  t.test('curl prints the paragraph, the reason and the request id', async (t) => {
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci-42:${TOKEN}`, '--cacert', caFile, deniedUrl])
    t.equal(r.status, 403, r.stderr)
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
    t.match(
      r.body,
      /portcullis blocked GET https:\/\/denied\.test:\d+\/simple\/evil-pkg\/ for agent ci-42: no rule allows this host/,
    )
    const rec = await connectRecord(pc, 'ci-42')
    t.equal(r.headers['x-portcullis-request-id'], rec.id, 'the id is the CONNECT’s')
    t.match(r.body, `portcullis approve ${rec.id}`)
    t.match(
      r.body,
      new RegExp(`which opens CONNECT denied\\.test:${origin.port} to this agent, not only this request`),
      'says the approval opens the CONNECT, not the one URL shown',
    )
    t.equal(
      pc.decisions().filter((x) => x.id === rec.id).length,
      1,
      'recorded once, as the CONNECT’s decision (no inner record)',
    )
  })

  t.test('a ClientHello naming another host than the CONNECT: denied_sni_mismatch, in words', async (t) => {
    // curl CONNECTs to allowed.test and sends SNI denied.test (domain fronting).
    const fronted = [
      '--connect-to',
      `denied.test:${origin.port}:allowed.test:${origin.port}`,
      `https://denied.test:${origin.port}/x`,
    ]
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci-42:${TOKEN}`, '--cacert', caFile, ...fronted])
    t.equal(r.status, 403, r.stderr)
    t.equal(r.headers['x-portcullis-decision'], 'denied_sni_mismatch')
    t.match(r.body, /for agent ci-42: .*name/)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.agent === 'ci-42' && x.reason === 'denied_sni_mismatch',
    )
    t.equal(r.headers['x-portcullis-request-id'], rec.id, 'the CONNECT’s id')
    t.match(
      rec,
      { method: 'CONNECT', host: 'allowed.test', detail: 'sni_differs', sni: 'denied.test' },
      'the fronted name is recorded',
    )
    const bare = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `tunneller:${TOKEN}`, ...fronted])
    t.not(bare.exitCode, 0, 'an agent that does not trust the CA still gets the TLS alert')
    t.equal(bare.status, 200, 'after the CONNECT’s 200, nothing in HTTP')
  })

  t.test('an agent whose policy intercepts nothing gets the bare 403 (it does not trust the CA)', async (t) => {
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `tunneller:${TOKEN}`, deniedUrl])
    t.not(r.exitCode, 0)
    t.match(r.stderr, /CONNECT tunnel failed, response 403/)
  })

  t.test(
    'a port where the client need not speak TLS (ssh via ProxyCommand) gets the 403 and its paragraph',
    async (t) => {
      // `nc -X connect` and corkscrew print a refused CONNECT's body; a 200 then a close read as
      // "Connection closed by remote host", and a server-speaks-first client (SMTP) would wait in silence.
      for (const [authority, reason] of [
        ['denied.test:22', /no rule allows this host/],
        ['allowed.test:22', /port/],
      ] as const) {
        const { socket, head, rest } = await connectTunnel(pc.proxyPort, authority, basicAuth('ci-42', TOKEN), {
          timeoutMs: 10_000,
        })
        const body = await new Promise<string>((resolve) => {
          let text = rest.toString('utf8')
          socket.on('data', (c: Buffer) => (text += c.toString('utf8')))
          socket.on('close', () => resolve(text))
          setTimeout(() => socket.destroy(), 5_000).unref()
        })
        t.match(head, /^HTTP\/1\.1 403 /, `${authority}: refused in the CONNECT's answer, not after a 200`)
        t.match(body, `portcullis blocked CONNECT ${authority} for agent ci-42`)
        t.match(body, reason)
      }
    },
  )

  t.test('undici shows the status, headers and JSON body', async (t) => {
    const dispatcher = new ProxyAgent({
      uri: pc.proxyUrl,
      token: `Basic ${Buffer.from(`ci-42:${TOKEN}`).toString('base64')}`,
      requestTls: { ca: readFileSync(caFile, 'utf8') },
    })
    t.teardown(() => dispatcher.close())
    const res = await undiciFetch(deniedUrl, { dispatcher, headers: { accept: 'application/json' } })
    t.equal(res.status, 403)
    const body = (await res.json()) as { reason: string; request_id: string; error: string; approve_opens: string }
    t.equal(body.reason, 'denied_no_rule')
    t.equal(body.approve_opens, `CONNECT denied.test:${origin.port}`)
    t.match(body.error, /no rule allows this host/)
    t.equal(res.headers.get('x-portcullis-request-id'), body.request_id)
  })

  t.test('undici sending an http:// URL through the CONNECT gets the denial in clear, not a bare close', async (t) => {
    const dispatcher = new ProxyAgent({
      uri: pc.proxyUrl,
      token: `Basic ${Buffer.from(`ci-42:${TOKEN}`).toString('base64')}`,
    })
    t.teardown(() => dispatcher.close())
    const res = await undiciFetch(`http://denied.test:${origin.port}/plain/x?y=1`, { dispatcher })
    t.equal(res.status, 403)
    t.equal(res.headers.get('x-portcullis-decision'), 'denied_no_rule')
    const text = await res.text()
    t.match(
      text,
      /portcullis blocked GET http:\/\/denied\.test:\d+\/plain\/x\?y=1 for agent ci-42: no rule allows this host/,
    )
    t.match(text, /which opens CONNECT denied\.test:\d+ to this agent/)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.id === res.headers.get('x-portcullis-request-id'),
    )
    t.match(rec, { agent: 'ci-42', host: 'denied.test', decision: 'deny', reason: 'denied_no_rule' })
  })

  t.test('git prints the paragraph as remote lines', async (t) => {
    const dir = t.testdir()
    const r = await runWith(
      'git',
      [
        '-c',
        `http.proxy=http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
        'clone',
        `https://denied.test:${origin.port}/acme/x.git`,
      ],
      { PATH: process.env.PATH, HOME: dir, GIT_SSL_CAINFO: caFile, GIT_TERMINAL_PROMPT: '0' },
      dir,
    )
    t.not(r.code, 0)
    t.match(r.output, /403/)
    t.match(r.output, /no rule allows this host/)
    t.match(r.output, /Request id [0-9A-Z]{26}/)
  })

  t.test('npm prints the JSON error', async (t) => {
    const home = t.testdir()
    mkdirSync(join(home, 'project'))
    writeFileSync(join(home, 'project', 'package.json'), '{"name":"p","version":"1.0.0","private":true}')
    const proxy = `http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`
    const r = await runWith(
      'npm',
      [
        'install',
        'evil-pkg',
        '--registry',
        `https://denied.test:${origin.port}/`,
        '--https-proxy',
        proxy,
        '--cafile',
        caFile,
        '--no-audit',
        '--no-fund',
        '--fetch-retries',
        '0',
      ],
      {
        PATH: process.env.PATH,
        HOME: home,
        npm_config_cache: join(home, 'cache'),
        npm_config_update_notifier: 'false',
      },
      join(home, 'project'),
    )
    t.not(r.code, 0)
    t.match(r.output, /403/)
    t.match(r.output, /no rule allows this host/, 'npm shows the reason')
    t.match(r.output, /Request id [0-9A-Z]{26}/)
  })

  t.test('python (urllib) gets the 403 with the paragraph', async (t) => {
    const script = [
      'import ssl, sys, urllib.request',
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(caFile)})`,
      `handler = urllib.request.ProxyHandler({"https": "http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}"})`,
      'opener = urllib.request.build_opener(handler, urllib.request.HTTPSHandler(context=ctx))',
      'try:',
      `    opener.open(${JSON.stringify(deniedUrl)})`,
      'except urllib.error.HTTPError as e:',
      '    print(e.code, e.read().decode())',
    ].join('\n')
    const r = await runWith('python3', ['-c', script], { PATH: process.env.PATH }, t.testdir())
    t.match(r.output, /^403 portcullis blocked GET/)
  })

  t.test('tls.explain_denials: always explains on 443 and ports intercepted rules cover, not elsewhere', async (t) => {
    const always = await startPortcullis(
      t,
      `tls: { ca_cert: ${JSON.stringify(join(pc.dir, 'always-ca.pem'))}, ca_key: ${JSON.stringify(join(pc.dir, 'always-ca-key.pem'))}, explain_denials: always }
upstream:
  ports: [${origin.port}]
  resolve: { denied.test: 127.0.0.1, allowed.test: 127.0.0.1 }
groups:
  g: { allow: [{ host: allowed.test }] }
agents:
  - { id: tunneller, token: ${TOKEN_HASH}, groups: [g] }
`,
    )
    const ca = join(pc.dir, 'always-ca.pem')
    // A denied CONNECT is never dialled, so port 443 needs no origin.
    const on443 = await curl([
      '--proxy',
      always.proxyUrl,
      '--proxy-user',
      `tunneller:${TOKEN}`,
      '--cacert',
      ca,
      'https://denied.test/x',
    ])
    t.equal(on443.status, 403, on443.stderr)
    t.match(on443.body, /portcullis blocked GET https:\/\/denied\.test\/x for agent tunneller/)
    const elsewhere = await curl(['--proxy', always.proxyUrl, '--proxy-user', `tunneller:${TOKEN}`, deniedUrl])
    t.match(elsewhere.stderr, /CONNECT tunnel failed, response 403/, 'no intercepted rule covers the origin port')
  })

  t.test('tls.explain_denials: never keeps the bare 403', async (t) => {
    const never = await startPortcullis(
      t,
      `tls: { ca_cert: ${JSON.stringify(join(pc.dir, 'never-ca.pem'))}, ca_key: ${JSON.stringify(join(pc.dir, 'never-ca-key.pem'))}, explain_denials: never }
upstream:
  ports: [${origin.port}]
  resolve: { denied.test: 127.0.0.1, allowed.test: 127.0.0.1 }
groups:
  g: { allow: [{ host: allowed.test, methods: [GET] }] }
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [g] }
`,
    )
    const r = await curl(['--proxy', never.proxyUrl, '--proxy-user', `ci-42:${TOKEN}`, deniedUrl])
    t.match(r.stderr, /CONNECT tunnel failed, response 403/)
  })
})
