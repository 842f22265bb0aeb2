import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { adminCall } from '../helpers/admin.js'
import { writeConfig } from '../helpers/config.js'
import { MAIN, runPortcullis, startInstance } from '../helpers/spawn-portcullis.js'

/**
 * The proxy address issued sandbox credentials name (SPEC §9 proxy_url), through the real program:
 * identity.sandbox_proxy when set, by the admin API and the offline CLI alike; a listener on every
 * address (the reference deployment's 0.0.0.0) names loopback only with a warning in the answer,
 * on the CLI's stderr, in the start-up log and in `check`; the offline CLI reads PORTCULLIS_LISTEN
 * as `start` does.
 */

const ADMIN_TOKEN = 'sandbox-proxy-admin-token-0123456789'
const KEY = randomBytes(32).toString('base64')
const TEMPLATE = `agents:\n  - { id: ci, sandboxes: true }\n`

interface Issued {
  readonly user: string
  readonly token: string
  readonly proxy_url: string
  readonly proxy_env: Record<string, string>
  readonly warning?: string
}

const cli = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  runPortcullis(args, { env: { PORTCULLIS_SIGNING_KEY: KEY, ...env }, timeoutMs: 20_000 })
const issueArgs = (config: string): string[] => [
  'sandbox',
  'issue',
  '--agent',
  'ci',
  '--ttl',
  '1h',
  '--json',
  '--config',
  config,
]

if (!existsSync(MAIN)) {
  t.fail(`${MAIN} does not exist: run \`npm run build\` first (npm test does)`)
} else {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-sandbox-proxy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_SIGNING_KEY: KEY }

  t.test('listen.host 0.0.0.0 and no identity.sandbox_proxy: loopback is named, and said to be a guess', async (t) => {
    const pc = await startInstance(t, `listen: { host: 0.0.0.0, port: 0 }\n${TEMPLATE}`, env)
    const logged = await pc.proc.waitLine((l) => l.code === 'PC_SANDBOX_PROXY_GUESSED', 5000)
    t.match(logged, { level: 'warn', msg: /identity\.sandbox_proxy/ }, 'the start-up log says so')
    const made = await adminCall<Issued>(pc.adminUrl, 'POST', '/api/sandboxes', { agent: 'ci', ttl: '1h' }, ADMIN_TOKEN)
    t.equal(made.status, 201)
    t.match(made.body.proxy_url, new RegExp(`@127\\.0\\.0\\.1:${pc.proxyPort}$`))
    t.match(made.body.warning, /wildcard address .*identity\.sandbox_proxy/, 'the API answer says so')
    const offline = await cli(issueArgs(pc.config))
    t.equal(offline.code, 0, offline.stderr)
    t.match((JSON.parse(offline.stdout) as Issued).warning, /identity\.sandbox_proxy/)
    t.match(offline.stderr, /warning: .*identity\.sandbox_proxy.*--proxy/, 'and the CLI on stderr')
    const told = await cli([...issueArgs(pc.config), '--proxy', 'proxy.internal:3128'])
    t.equal(told.code, 0, told.stderr)
    t.equal((JSON.parse(told.stdout) as Issued).warning, undefined, '--proxy names the address: no guess')
    t.equal(told.stderr, '')
    const check = await cli(['check', '--config', pc.config])
    t.match(check.stdout, /PC_SANDBOX_PROXY_GUESSED/, '`check` warns too')
  })

  t.test('identity.sandbox_proxy: the address the API and the offline CLI both name', async (t) => {
    const pc = await startInstance(
      t,
      `listen: { host: 0.0.0.0, port: 0 }\nidentity: { sandbox_proxy: "proxy.internal:3128" }\n${TEMPLATE}`,
      env,
    )
    const made = await adminCall<Issued>(pc.adminUrl, 'POST', '/api/sandboxes', { agent: 'ci', ttl: '1h' }, ADMIN_TOKEN)
    t.equal(made.status, 201)
    t.match(made.body, {
      proxy_url: `http://${made.body.user}:${made.body.token}@proxy.internal:3128`,
      proxy_env: { HTTPS_PROXY: /@proxy\.internal:3128$/ },
    })
    t.equal(made.body.warning, undefined)
    const offline = await cli(issueArgs(pc.config))
    t.equal(offline.code, 0, offline.stderr)
    t.match(JSON.parse(offline.stdout), { proxy_url: /@proxy\.internal:3128$/ })
    t.equal(offline.stderr, '')
    t.notOk(
      pc.proc.parsed().some((l) => l.code === 'PC_SANDBOX_PROXY_GUESSED'),
      'no start-up warning',
    )
  })

  t.test('identity.sandbox_proxy must be HOST:PORT', async (t) => {
    const config = writeConfig(dir, `identity: { sandbox_proxy: "proxy.internal" }\n${TEMPLATE}`, { file: 'bad.yaml' })
    const r = await cli(['check', '--config', config])
    t.not(r.code, 0)
    t.match(r.stderr, /identity\.sandbox_proxy.*HOST:PORT/)
  })

  t.test('the offline CLI reads PORTCULLIS_LISTEN, as `start` does', async (t) => {
    const config = writeConfig(dir, `listen: { host: 127.0.0.1, port: 3128 }\n${TEMPLATE}`, { file: 'listen.yaml' })
    const r = await cli(issueArgs(config), { PORTCULLIS_LISTEN: '127.0.0.5:4567' })
    t.equal(r.code, 0, r.stderr)
    t.match(JSON.parse(r.stdout), { proxy_url: /@127\.0\.0\.5:4567$/ })
  })

  t.test('sandbox issue refuses a --label key given twice (exit 2), offline and through the API alike', async (t) => {
    const config = writeConfig(dir, TEMPLATE, { file: 'labels.yaml' })
    const args = [...issueArgs(config), '--label', 'task=T-1', '--label', 'task=T-2']
    const offline = await cli(args)
    t.equal(offline.code, 2, offline.stderr)
    t.match(offline.stderr, /--label task is given twice/)
    t.equal(offline.stdout, '', 'nothing issued')
    const viaApi = await runPortcullis([...args, '--admin', 'http://127.0.0.1:9'], { env: {}, timeoutMs: 20_000 })
    t.equal(viaApi.code, 2, 'refused before the API is asked')
  })
}
