import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startGitServer, gitEnv, gitRpcByCurl, runGit } from '../helpers/git-server.js'
import { pinnedUpstreamYaml, TOKEN, TOKEN_HASH } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * inspect_body on a host another rule opens as a repo (README, Credentials and secrets: any matching
 * allow rule that asks for inspection applies): git smart HTTP under the repo rule is scanned like any
 * other request, real git and curl through the real proxy to `git http-backend` pinned as github.com.
 */
const AWS_KEY_ID = 'AKIAZ7QRSTUVWXY23456'

const CASES = [
  {
    name: 'a github rule',
    host: 'github.com',
    repo: 'acme/widgets',
    rule: 'github: { repos: [acme/widgets], access: write, push: { max_pack_bytes: 8MiB } }',
  },
  {
    name: 'a git rule with token_env',
    host: 'git.test',
    repo: 'acme/widgets',
    rule: 'git: { host: git.test, repos: [acme/widgets], access: write, push: { branches: ["agent/{agent}/**"], max_pack_bytes: 8MiB }, token_env: PC_TEST_GIT_TOKEN }',
  },
]

for (const c of CASES)
  t.test(`git smart HTTP on ${c.name} is inspected when another matching rule asks`, async (t) => {
    const git = await startGitServer(t, c.host, { [`${c.repo}.git`]: 'widgets\n' })
    const base = `https://${c.host}:${git.port}`
    const pc = await startPortcullis(
      t,
      `${pinnedUpstreamYaml({ ports: [git.port], hosts: [c.host], caFile: git.ca.certFile })}groups:
  agents:
    allow:
      - host: ${c.host}
        inspect_body: true
      - ${c.rule}
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
`,
      {},
      { env: { PC_TEST_GIT_TOKEN: 'git_token_only_the_proxy_holds' } },
    )
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-git-inspect-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const env = gitEnv(dir, { GIT_SSL_CAINFO: join(pc.dir, 'ca.pem') })
    const via = ['-c', `http.proxy=http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`, '-c', 'http.proxyAuthMethod=basic']
    const work = join(dir, 'widgets')
    const inWork = { cwd: work }
    const commit = async (file: string, content: string | Buffer): Promise<void> => {
      writeFileSync(join(work, file), content)
      await runGit(['add', file], env, inWork)
      await runGit(['commit', '-q', '-m', file], env, inWork)
    }
    const push = (...args: string[]): ReturnType<typeof runGit> => runGit([...via, 'push', ...args], env, inWork)
    const lastRecord = async (suffix: string): Promise<DecisionRecord> => {
      await pc.waitForRecord((x) => x.event === 'decision' && x.path?.endsWith(suffix) === true)
      return pc
        .decisions()
        .filter((x) => x.path?.endsWith(suffix) === true)
        .at(-1) as DecisionRecord
    }

    const clone = await runGit([...via, 'clone', `${base}/${c.repo}.git`, work], env)
    t.equal(clone.code, 0, clone.stderr)

    t.test('a clean push passes the scan and the push rules', async (t) => {
      await commit('A', 'a\n')
      const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/clean')
      t.equal(r.code, 0, r.stderr)
      t.match(await lastRecord('git-receive-pack'), { decision: 'allow' })
    })

    t.test('a key in a pushed ref name is denied_secret_detected and reaches neither origin nor record', async (t) => {
      await commit('B', 'b\n')
      const ref = `refs/heads/agent/ci-42/${AWS_KEY_ID}`
      const r = await push('origin', `HEAD:${ref}`)
      t.not(r.code, 0)
      const rec = await lastRecord('git-receive-pack')
      t.match(rec, { decision: 'deny', reason: 'denied_secret_detected', detail: 'aws_access_key_id' })
      t.notOk(JSON.stringify(rec).includes(AWS_KEY_ID), 'the record does not carry the key')
      t.throws(() => git.revParse(`${c.repo}.git`, `agent/ci-42/${AWS_KEY_ID}`), 'the ref did not reach the server')
    })

    t.test('a key in a ref the push rules refuse stays out of the record', async (t) => {
      const r = await push('origin', `HEAD:refs/heads/release-${AWS_KEY_ID}`)
      t.not(r.code, 0)
      const rec = await lastRecord('git-receive-pack')
      t.match(rec, { decision: 'deny', reason: 'denied_git_push', git: { refs: [{ refused: 'ref_not_allowed' }] } })
      t.notOk(JSON.stringify(rec).includes(AWS_KEY_ID), 'the record does not carry the key')
    })

    t.test('a push body over the inspection cap is refused uninspectable', async (t) => {
      await commit('BIG', randomBytes(1536 * 1024))
      const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/big')
      t.not(r.code, 0)
      t.match(await lastRecord('git-receive-pack'), { reason: 'denied_secret_detected', detail: 'uninspectable' })
      t.throws(() => git.revParse(`${c.repo}.git`, 'agent/ci-42/big'), 'the ref did not reach the server')
    })

    t.test('an upload-pack request carrying a key is denied_secret_detected', async (t) => {
      const seen = git.seen.length
      const r = await gitRpcByCurl(pc, `${base}/${c.repo}.git`, 'git-upload-pack', `0032want ${AWS_KEY_ID}\n`)
      t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
      t.match(await lastRecord('git-upload-pack'), { reason: 'denied_secret_detected', detail: 'aws_access_key_id' })
      t.equal(git.seen.length, seen, 'nothing reached the origin')
    })
  })
