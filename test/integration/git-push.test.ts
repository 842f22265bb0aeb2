import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startGitServer, gitEnv, gitRpcByCurl, runGit } from '../helpers/git-server.js'
import { pinnedUpstreamYaml, TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { curl } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * Agents propose, humans merge (SPEC §8) on git smart HTTP: real git through the real proxy to
 * `git http-backend` on loopback, pinned as github.com. An agent pushes its own branches; pushes to
 * main, force pushes, deletions, tags and oversized packs are refused whole, and git prints why.
 */
const FORGE_TOKEN = 'ghs_forge_token_only_the_proxy_holds'

/** A temp home for git run as agent ci-42 through the proxy, trusting its CA; `work` is the clone's place. */
function gitThroughProxy(
  t: Test,
  pc: { readonly dir: string; readonly proxyPort: number },
  prefix: string,
): { dir: string; env: NodeJS.ProcessEnv; via: string[]; work: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return {
    dir,
    env: gitEnv(dir, { GIT_SSL_CAINFO: join(pc.dir, 'ca.pem') }),
    via: ['-c', `http.proxy=http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`, '-c', 'http.proxyAuthMethod=basic'],
    work: join(dir, 'widgets'),
  }
}

/** A git origin pinned as github.com holding `repos`, behind the proxy with `config` (YAML from `groups:` on). */
async function forgeBehindProxy(
  t: Test,
  repos: Record<string, string>,
  config: string,
): Promise<{
  git: Awaited<ReturnType<typeof startGitServer>>
  base: string
  pc: Awaited<ReturnType<typeof startPortcullis>>
}> {
  const git = await startGitServer(t, 'github.com', repos)
  const upstream = pinnedUpstreamYaml({ ports: [git.port], hosts: ['github.com'], caFile: git.ca.certFile })
  const pc = await startPortcullis(t, `${upstream}${config}`)
  return { git, base: `https://github.com:${git.port}`, pc }
}

t.test('push rules on git smart HTTP', async (t) => {
  const git = await startGitServer(t, 'github.com', { 'acme/widgets.git': 'widgets\n' })
  const base = `https://github.com:${git.port}`
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [git.port], hosts: ['github.com'], caFile: git.ca.certFile })}groups:
  agents:
    allow:
      - github:
          repos: [acme/widgets]
          access: write
          push: { max_pack_bytes: 256KiB }
          token_env: PC_TEST_FORGE_TOKEN
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
  - { id: aud, token: ${TOKEN_HASH}, groups: [agents], mode: audit }
`,
    {},
    { env: { PC_TEST_FORGE_TOKEN: FORGE_TOKEN } },
  )
  const { dir, env, via, work } = gitThroughProxy(t, pc, 'portcullis-push-')
  const inWork = { cwd: work }
  const commit = async (file: string, content: string | Buffer, message: string): Promise<string> => {
    writeFileSync(join(work, file), content)
    await runGit(['add', file], env, inWork)
    await runGit(['commit', '-q', '-m', message], env, inWork)
    return (await runGit(['rev-parse', 'HEAD'], env, inWork)).stdout.trim()
  }
  const push = (...args: string[]): ReturnType<typeof runGit> => runGit([...via, 'push', ...args], env, inWork)
  const record = (id: string): Promise<DecisionRecord> =>
    pc.waitForRecord<DecisionRecord>((x) => x.event === 'decision' && x.id === id)
  const lastPushRecord = async (): Promise<DecisionRecord> => {
    await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'POST' && x.path?.endsWith('git-receive-pack') === true,
    )
    return pc
      .decisions()
      .filter((x) => x.method === 'POST' && x.path?.endsWith('git-receive-pack') === true)
      .at(-1) as DecisionRecord
  }

  const clone = await runGit([...via, 'clone', `${base}/acme/widgets.git`, work], env)
  t.equal(clone.code, 0, clone.stderr)
  const mainBefore = git.revParse('acme/widgets.git')

  t.test('the agent pushes its own branch; the record names the ref', async (t) => {
    const sha = await commit('A', 'a\n', 'first change')
    const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/fix-123')
    t.equal(r.code, 0, r.stderr)
    t.equal(git.revParse('acme/widgets.git', 'agent/ci-42/fix-123'), sha)
    const rec = await lastPushRecord()
    t.match(rec, {
      decision: 'allow',
      git: { refs: [{ ref: 'refs/heads/agent/ci-42/fix-123', new: sha }] },
    })
    t.ok(
      git.seen.some(
        (s) => s.authorization === `Basic ${Buffer.from(`x-access-token:${FORGE_TOKEN}`).toString('base64')}`,
      ),
      'token_env reached the forge as Basic x-access-token',
    )
  })

  t.test('a fast forward of its branch is proven from the pack and allowed', async (t) => {
    const sha = await commit('B', 'b\n', 'second change')
    const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/fix-123')
    t.equal(r.code, 0, r.stderr)
    t.equal(git.revParse('acme/widgets.git', 'agent/ci-42/fix-123'), sha)
  })

  t.test('a force push after an amend is refused: not proven a fast forward', async (t) => {
    const before = git.revParse('acme/widgets.git', 'agent/ci-42/fix-123')
    await runGit(['commit', '-q', '--amend', '-m', 'rewritten'], env, inWork)
    const r = await push('--force', 'origin', 'HEAD:refs/heads/agent/ci-42/fix-123')
    t.not(r.code, 0)
    // The amended commit's parent is on the server, not in the pack: whether it leads to the old tip is
    // not the proxy's to see, so it says it could not prove the update, not that history was rewritten.
    t.match(
      r.stderr,
      /! \[remote rejected\] HEAD -> agent\/ci-42\/fix-123 \(portcullis: the proxy could not prove this update a fast forward.*or the update rewrites history/,
    )
    t.equal(git.revParse('acme/widgets.git', 'agent/ci-42/fix-123'), before, 'the ref did not move')
    t.match(await lastPushRecord(), { reason: 'denied_git_push', detail: 'not_fast_forward' })
  })

  t.test('a push to main is refused with what is allowed and the request id', async (t) => {
    const r = await push('origin', 'HEAD:main')
    t.not(r.code, 0)
    const rec = await lastPushRecord()
    t.match(
      r.stderr,
      `! [remote rejected] HEAD -> main (portcullis: agent ci-42 may push only to agent/ci-42/**; push there and open a pull request; request id ${rec.id})`,
    )
    t.match(r.stderr, /remote: portcullis: push refused/)
    t.equal(git.revParse('acme/widgets.git'), mainBefore, 'main did not move')
    t.match(rec, {
      reason: 'denied_git_push',
      detail: 'ref_not_allowed',
      rule: 'agents.allow[0]',
      git: { refs: [{ ref: 'refs/heads/main', refused: 'ref_not_allowed' }] },
    })
  })

  t.test('deleting a branch and pushing a tag are refused', async (t) => {
    const del = await push('origin', ':refs/heads/agent/ci-42/fix-123')
    t.not(del.code, 0)
    t.match(del.stderr, /remote rejected\].*may not delete branches/)
    t.match(await lastPushRecord(), { detail: 'delete' })
    await runGit(['tag', 'v1.0'], env, inWork)
    const tag = await push('origin', 'v1.0')
    t.not(tag.code, 0)
    t.match(
      tag.stderr,
      /remote rejected\] v1\.0 -> v1\.0 \(portcullis: agent ci-42 may not create, move or delete tags/,
    )
    t.match(await lastPushRecord(), { detail: 'tag' })
  })

  t.test('a push with one bad ref is refused whole: the good ref does not move either', async (t) => {
    const before = git.revParse('acme/widgets.git', 'agent/ci-42/fix-123')
    await runGit(['checkout', '-q', '-b', 'two'], env, inWork)
    await commit('C', 'c\n', 'third change')
    const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/other', 'HEAD:main')
    t.not(r.code, 0)
    t.match(r.stderr, /agent\/ci-42\/other \(portcullis: refused with the rest of this push/)
    t.match(r.stderr, /-> main \(portcullis: agent ci-42 may push only to/)
    t.throws(() => git.revParse('acme/widgets.git', 'agent/ci-42/other'), 'the good ref was not created')
    t.equal(git.revParse('acme/widgets.git', 'agent/ci-42/fix-123'), before)
  })

  t.test('a signed push hiding commands behind a NUL in its certificate is refused whole', async (t) => {
    // git keeps a certificate line only up to a NUL: to git the header ends at the first blank line
    // and the tag and release lines are commands; a reader of the whole line would check only the last.
    const main = git.revParse('acme/widgets.git')
    const zeros = '0'.repeat(40)
    const pkt = (s: string): string => `${(s.length + 4).toString(16).padStart(4, '0')}${s}`
    const emptyPack = Buffer.concat([Buffer.from('PACK\0\0\0\x02\0\0\0\0', 'latin1')])
    const wire = Buffer.concat([
      Buffer.from(
        [
          pkt('push-cert\0report-status side-band-64k object-format=sha1 agent=git/2.39.5\n'),
          pkt('certificate version 0.1\n'),
          pkt('pusher x <a@b> 1700000000 +0000\n'),
          pkt('nonce 1\n'),
          pkt('\0'),
          pkt('\n'),
          pkt(`${zeros} ${main} refs/tags/v9\n`),
          pkt(`${zeros} ${main} refs/heads/release\0\n`),
          pkt('\n'),
          pkt(`${zeros} ${main} refs/heads/agent/ci-42/cover\n`),
          pkt('-----BEGIN PGP SIGNATURE-----\n'),
          pkt('-----END PGP SIGNATURE-----\n'),
          pkt('push-cert-end\n'),
          '0000',
        ].join(''),
        'latin1',
      ),
      emptyPack,
      createHash('sha1').update(emptyPack).digest(),
    ])
    const bodyFile = join(dir, 'smuggled-push')
    writeFileSync(bodyFile, wire)
    const r = await gitRpcByCurl(pc, `${base}/acme/widgets.git`, 'git-receive-pack', `@${bodyFile}`)
    t.match(r.headers['x-portcullis-decision'], 'denied_git_push')
    t.match(await lastPushRecord(), { reason: 'denied_git_push', detail: 'unreadable' })
    for (const ref of ['v9', 'release', 'agent/ci-42/cover'])
      t.throws(() => git.revParse('acme/widgets.git', ref), `${ref} did not reach the server`)
  })

  t.test('a pack over max_pack_bytes is refused', async (t) => {
    await commit('BIG', randomBytes(600 * 1024), 'big blob')
    const r = await push('origin', 'HEAD:refs/heads/agent/ci-42/big')
    t.not(r.code, 0)
    t.match(r.stderr, /larger than|rejected|403/)
    const rec = await lastPushRecord()
    t.match(rec, { reason: 'denied_git_push', detail: 'pack_too_large' })
    t.throws(() => git.revParse('acme/widgets.git', 'agent/ci-42/big'))
    // Past what the proxy holds at all (the pack limit plus a head): refused while the rest is drained.
    await commit('HUGE', randomBytes(2 * 1024 * 1024), 'huge blob')
    const huge = await push('origin', 'HEAD:refs/heads/agent/ci-42/huge')
    t.not(huge.code, 0)
    t.match(await lastPushRecord(), { reason: 'denied_git_push', detail: 'pack_too_large' })
    t.throws(() => git.revParse('acme/widgets.git', 'agent/ci-42/huge'))
    // Too large and to a branch it may not push: git prints the branch rule, not only the size.
    const both = await push('origin', 'HEAD:refs/heads/agent/ci-42/big-again', 'HEAD:refs/heads/release')
    t.not(both.code, 0)
    t.match(both.stderr, /HEAD -> release \(portcullis: agent ci-42 may push only to agent\/ci-42\/\*\*/)
    t.match(both.stderr, /HEAD -> agent\/ci-42\/big-again \(portcullis: the push is larger than 256 KiB/)
    t.match(await lastPushRecord(), {
      detail: 'ref_not_allowed',
      git: { refs: [{ refused: 'pack_too_large' }, { ref: 'refs/heads/release', refused: 'ref_not_allowed' }] },
    })
  })

  t.test('audit mode blocks nothing: a push enforce would refuse lands, recorded would_deny', async (t) => {
    const asAudit = [
      '-c',
      `http.proxy=http://aud:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
      '-c',
      'http.proxyAuthMethod=basic',
    ]
    const auditPush = (...args: string[]): ReturnType<typeof runGit> =>
      runGit([...asAudit, 'push', ...args], env, { ...inWork, timeoutMs: 60_000 })
    // Past max_pack_bytes and past what the proxy holds (the big blobs above): the rest is streamed on.
    const big = await auditPush('origin', 'HEAD:refs/heads/audit-big')
    t.equal(big.code, 0, big.stderr)
    t.equal(
      git.revParse('acme/widgets.git', 'audit-big'),
      (await runGit(['rev-parse', 'HEAD'], env, inWork)).stdout.trim(),
    )
    t.match(await lastPushRecord(), {
      agent: 'aud',
      mode: 'audit',
      would_deny: true,
      reason: 'denied_git_push',
    })
    // Held whole, refused for its ref alone: sent on as it was held.
    const small = await commit('small-audit', 'x\n', 'small')
    const r = await auditPush('origin', 'HEAD:refs/heads/not-agents-branch')
    t.equal(r.code, 0, r.stderr)
    t.equal(git.revParse('acme/widgets.git', 'not-agents-branch'), small)
    t.match(await lastPushRecord(), { agent: 'aud', would_deny: true, detail: 'ref_not_allowed' })
  })

  t.test('the forge token never reaches a log line or the sandbox', async (t) => {
    t.notOk(pc.logLines().some((l) => l.includes(FORGE_TOKEN)))
    void record
  })
})

/** A receive-pack body by hand: one command, the capabilities git sends, and an empty pack. */
function receivePackBody(old: string, neu: string, ref: string): Buffer {
  const line = `${old} ${neu} ${ref}\0 report-status side-band-64k agent=git/2.39\n`
  const pkt = `${(line.length + 4).toString(16).padStart(4, '0')}${line}`
  const header = Buffer.from('PACK\0\0\0\x02\0\0\0\0', 'latin1')
  const pack = Buffer.concat([header, createHash('sha1').update(header).digest()])
  return Buffer.concat([Buffer.from(`${pkt}0000`, 'latin1'), pack])
}

t.test('a push path spelled for a decoding server, under an approval or a broader rule', async (t) => {
  const git = await startGitServer(t, 'github.com', { 'acme/widgets.git': 'widgets\n', 'acme/other.git': 'o\n' })
  const base = `https://github.com:${git.port}`
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [git.port], hosts: ['github.com'], caFile: git.ca.certFile })}groups:
  agents:
    allow:
      - github: { repos: [acme/widgets], access: write, token_env: PC_TEST_FORGE_TOKEN }
  broad:
    allow:
      - host: github.com
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
  - { id: wide, token: ${TOKEN_HASH}, groups: [agents, broad] }
`,
    {},
    { env: { PC_TEST_FORGE_TOKEN: FORGE_TOKEN } },
  )
  const { dir, env, via, work } = gitThroughProxy(t, pc, 'portcullis-push-spelling-')
  t.equal((await runGit([...via, 'clone', `${base}/acme/widgets.git`, work], env)).code, 0)
  writeFileSync(join(work, 'A'), 'unreviewed\n')
  await runGit(['add', 'A'], env, { cwd: work })
  await runGit(['commit', '-q', '-m', 'unreviewed'], env, { cwd: work })
  const pushed = await runGit([...via, 'push', 'origin', 'HEAD:refs/heads/agent/ci-42/b'], env, { cwd: work })
  t.equal(pushed.code, 0, pushed.stderr)
  const tip = git.revParse('acme/widgets.git', 'agent/ci-42/b')
  const main = git.revParse('acme/widgets.git')
  const bodyFile = join(dir, 'push.bin')
  writeFileSync(bodyFile, receivePackBody(main, tip, 'refs/heads/main'))
  /** curl as `agent` through the proxy, trusting its CA. */
  const as = (agent: string, args: readonly string[]): ReturnType<typeof curl> =>
    curl([
      '--proxy',
      `http://127.0.0.1:${pc.proxyPort}`,
      '--proxy-user',
      `${agent}:${TOKEN}`,
      '--cacert',
      join(pc.dir, 'ca.pem'),
      ...args,
    ])
  const post = (agent: string, path: string): ReturnType<typeof curl> =>
    as(agent, [
      '--path-as-is',
      '-H',
      'content-type: application/x-git-receive-pack-request',
      '--data-binary',
      `@${bodyFile}`,
      `${base}${path}`,
    ])
  const seenBefore = git.seen.length

  await t.test('under a host approval, an encoded receive-pack still meets the push rules', async (t) => {
    const denied = await as('ci-42', [`${base}/acme/wiki/info/refs?service=git-upload-pack`])
    t.equal(denied.status, 403)
    const id = denied.headers['x-portcullis-request-id'] as string
    t.match(await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: id, scope: 'host' }), { status: 201 })
    const r = await post('ci-42', '/acme/widgets.git%2Fgit-receive-pack')
    t.match(r.body, /ng refs\/heads\/main portcullis: agent ci-42 may push only to agent\/ci-42\/\*\*/)
    t.equal(git.revParse('acme/widgets.git'), main, 'main did not move')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.id === r.headers['x-portcullis-request-id'],
    )
    t.match(rec, { reason: 'denied_git_push', detail: 'ref_not_allowed' })
    const other = await post('ci-42', '/acme/other.git/git-receive-pack')
    t.equal(other.status, 403, 'a push to a repository no write rule names is not opened by the approval')
    t.equal(git.seen.slice(seenBefore).filter((s) => s.method === 'POST').length, 0, 'no push reached the forge')
    const read = await as('ci-42', [`${base}/acme/other.git/info/refs?service=git-upload-pack`])
    t.equal(read.status, 200, 'the approval opens the read')
    const reached = git.seen.filter((s) => s.url.startsWith('/acme/other.git/info/refs')).at(-1)
    t.equal(reached?.authorization, undefined, "no rule's token_env rides on a request only an approval let through")
  })

  await t.test('a broader host rule does not switch the push rules off', async (t) => {
    const r = await post('wide', '/acme/widgets.git%2Fgit-receive-pack')
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_path')
    t.equal(git.revParse('acme/widgets.git'), main, 'main did not move')
    const plain = await post('wide', '/acme/widgets.git/git-receive-pack')
    t.match(plain.body, /ng refs\/heads\/main portcullis:/, 'the plain spelling meets the push rules as before')
    t.equal(git.revParse('acme/widgets.git'), main)
  })

  await t.test('push options are refused: forges act on them', async (t) => {
    await runGit(['config', 'receive.advertisePushOptions', 'true'], git.env, {
      cwd: join(git.root, 'acme/widgets.git'),
    })
    const r = await runGit(
      [...via, 'push', '-o', 'merge_request.merge_when_pipeline_succeeds', 'origin', 'HEAD:refs/heads/agent/ci-42/c'],
      env,
      { cwd: work },
    )
    t.not(r.code, 0)
    t.match(r.stderr, /remote rejected\].*push options \(git push -o\) are not passed on/)
    const plain = await runGit([...via, 'push', 'origin', 'HEAD:refs/heads/agent/ci-42/c'], env, { cwd: work })
    t.equal(plain.code, 0, plain.stderr)
  })

  await t.test(
    'a fast forward to commits the server already has is refused as unproven, not as a rewrite',
    async (t) => {
      writeFileSync(join(work, 'D'), 'd\n')
      await runGit(['add', 'D'], env, { cwd: work })
      await runGit(['commit', '-q', '-m', 'd'], env, { cwd: work })
      t.equal((await runGit([...via, 'push', 'origin', 'HEAD:refs/heads/agent/ci-42/d'], env, { cwd: work })).code, 0)
      const r = await runGit([...via, 'push', 'origin', 'HEAD:refs/heads/agent/ci-42/b'], env, { cwd: work })
      t.not(r.code, 0)
      t.match(r.stderr, /remote rejected\].*the proxy could not prove this update a fast forward/)
      t.notMatch(r.stderr, /may not rewrite history/)
    },
  )

  await t.test(
    'a fast forward onto commits another push carried is refused as unproven, not as a rewrite',
    async (t) => {
      const commitAs = async (name: string): Promise<void> => {
        writeFileSync(join(work, name), `${name}\n`)
        await runGit(['add', name], env, { cwd: work })
        await runGit(['commit', '-q', '-m', name], env, { cwd: work })
      }
      const pushTo = (branch: string): ReturnType<typeof runGit> =>
        runGit([...via, 'push', 'origin', `HEAD:refs/heads/agent/ci-42/${branch}`], env, { cwd: work })
      await commitAs('O')
      t.equal((await pushTo('stack-a')).code, 0)
      await commitAs('P')
      t.equal((await pushTo('stack-b')).code, 0)
      await commitAs('C')
      // The pack carries C alone; its parent P is on the server (stack-b) and leads to O, the old tip.
      const r = await pushTo('stack-a')
      t.not(r.code, 0)
      t.match(
        r.stderr,
        /remote rejected\].*the proxy could not prove this update a fast forward.*the server may have them/,
      )
      t.notMatch(r.stderr, /may not rewrite history/)
    },
  )
})

t.test('owner and repo in any letter case meet the same repo rules, allow and deny', async (t) => {
  const { git, base, pc } = await forgeBehindProxy(
    t,
    { 'acme/widgets.git': 'widgets\n', 'acme/secret.git': 's\n' },
    `groups:
  agents:
    allow:
      - github: { repos: [Acme/Widgets], preset: github-agent }
      - github: { repos: ["acme/*"], access: write, push: { branches: ["**"], force: true } }
    deny:
      - github: { repos: [acme/secret] }
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
`,
  )
  // GitHub routes owner and repo case-insensitively: the origin serves every spelling of both.
  symlinkSync('widgets.git', join(git.root, 'acme/Widgets.git'))
  symlinkSync('secret.git', join(git.root, 'acme/Secret.git'))
  const { env, via, work } = gitThroughProxy(t, pc, 'portcullis-push-case-')
  const secret = await runGit([...via, 'clone', `${base}/acme/Secret.git`, `${work}-secret`], env)
  t.not(secret.code, 0, 'the denied repo spelled otherwise is still denied')
  t.match(secret.stderr, /403/)
  t.equal((await runGit([...via, 'clone', `${base}/acme/widgets.git`, work], env)).code, 0)
  writeFileSync(join(work, 'A'), 'unreviewed\n')
  await runGit(['add', 'A'], env, { cwd: work })
  await runGit(['commit', '-q', '-m', 'unreviewed'], env, { cwd: work })
  const main = git.revParse('acme/widgets.git')
  const r = await runGit([...via, 'push', `${base}/acme/Widgets.git`, 'HEAD:main'], env, { cwd: work })
  t.not(r.code, 0)
  t.match(r.stderr, /remote rejected\] HEAD -> main \(portcullis: agent ci-42 may push only to agent\/ci-42\/\*\*/)
  t.equal(git.revParse('acme/widgets.git'), main, 'main did not move under the broader rule')
  const own = await runGit([...via, 'push', `${base}/acme/Widgets.git`, 'HEAD:agent/ci-42/x'], env, { cwd: work })
  t.equal(own.code, 0, own.stderr)
})

t.test('a small push of big delta commits is refused quickly, and other requests are answered meanwhile', async (t) => {
  const { git, base, pc } = await forgeBehindProxy(
    t,
    { 'acme/widgets.git': 'widgets\n' },
    `groups:
  agents:
    allow:
      - github: { repos: [acme/widgets], preset: github-agent }
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
`,
  )
  const { dir, env, via, work } = gitThroughProxy(t, pc, 'portcullis-push-fat-')
  const inWork = { cwd: work }
  t.equal((await runGit([...via, 'clone', `${base}/acme/widgets.git`, work], env)).code, 0)
  const branch = 'HEAD:refs/heads/agent/ci-42/fat'
  t.equal((await runGit([...via, 'push', 'origin', branch], env, inWork)).code, 0)
  const before = git.revParse('acme/widgets.git', 'agent/ci-42/fat')
  // 62 commits with a 1 MB message: each a delta on the next, ~10 KB of pack rebuilding 62 MB of commits.
  const message = join(dir, 'message')
  for (let i = 0; i < 62; i++) {
    writeFileSync(message, `x${i}\n\n${'a'.repeat(1_000_000)}\n`)
    await runGit(['commit', '-q', '--allow-empty', '-F', message], env, inWork)
  }
  const pushing = runGit([...via, 'push', 'origin', branch], env, inWork)
  let done = false
  void pushing.finally(() => (done = true))
  const slowest: number[] = []
  for (let i = 0; i < 200 && !done; i++) {
    // A request the proxy answers itself (a path no rule opens): how long the proxy keeps it waiting.
    const probe = await curl([
      '--proxy',
      `http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
      '--cacert',
      join(pc.dir, 'ca.pem'),
      '-w',
      '\n%{time_total}',
      `${base}/acme/other/probe`,
    ])
    t.equal(probe.status, 403)
    slowest.push(Number(probe.body.trim().split('\n').at(-1)))
  }
  const r = await pushing
  t.not(r.code, 0)
  t.match(r.stderr, /remote rejected\] HEAD -> agent\/ci-42\/fat \(portcullis: the proxy did not prove this update/)
  t.equal(git.revParse('acme/widgets.git', 'agent/ci-42/fat'), before, 'the branch did not move')
  t.ok(slowest.length > 0, `${slowest.length} requests while the push was read`)
  t.ok(Math.max(...slowest) < 0.75, `the slowest request took ${Math.max(...slowest)} s (${slowest.join(' ')})`)
})
