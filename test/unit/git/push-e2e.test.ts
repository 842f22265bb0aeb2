import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runGit } from '../../helpers/git-server.js'
import type { ObjectFormat } from '../../../src/git/object-format.js'
import { longText, makeRepo, type Repo } from './git-fixtures.js'
import { startPushServer, type PushServer, type PushServerOptions } from './push-server.js'

/**
 * Real `git push` over smart HTTP to a loopback server that reads the push
 * with src/git and refuses it with buildRefusal, or replays it into a real
 * receive-pack. Proves that git itself parses our report-status and that the
 * head and pack readers see what git sent.
 */

const REASON =
  'portcullis: agent ci-42 may push only to agent/ci-42/**; push there and open a pull request; request id 01JDTEST'

interface World {
  readonly work: Repo
  readonly bare: Repo
  readonly server: PushServer
  readonly base: string
  push(args: readonly string[]): ReturnType<typeof runGit>
}

async function setup(t: Test, options: Partial<PushServerOptions> & { format?: ObjectFormat } = {}): Promise<World> {
  const dir = t.testdir({})
  const format = options.format ?? 'sha1'
  const bare = makeRepo(join(dir, 'bare.git'), format, true)
  const work = makeRepo(join(dir, 'work'), format)
  const base = work.commit('base\n', { 'a.txt': longText(0) })
  work.git(['push', '-q', bare.dir, 'main:main'])
  const server = await startPushServer({
    bare: bare.dir,
    env: bare.env,
    tmpDir: dir,
    decide: () => [],
    ...options,
  })
  t.teardown(() => server.close())
  const push = (args: readonly string[]) =>
    runGit(['-c', 'http.proxy=', ...args], { ...work.env, NO_PROXY: '*' }, { cwd: work.dir, timeoutMs: 60_000 })
  return { work, bare, server, base, push }
}

const refuseAll = (reason: string) => (v: { head: { commands: readonly { ref: string }[] } }) =>
  v.head.commands.map((c) => ({ ref: c.ref, reason }))

/** Refuse any update that the pack does not prove to be a fast forward. */
const requireFastForward: PushServerOptions['decide'] = (v) => {
  const bad = v.head.commands.filter((_, i) => {
    const ff = v.fastForward[i]
    return ff !== null && ff !== undefined && ff.kind !== 'fast_forward'
  })
  if (bad.length === 0) return null
  return v.head.commands.map((c) => ({ ref: c.ref, reason: `portcullis: ${c.ref} is not a fast-forward` }))
}

t.test('git push prints our ng reason as "[remote rejected]" and the ref does not move', async (t) => {
  const w = await setup(t, { decide: refuseAll(REASON), message: 'portcullis: push refused\nsee the reason below' })
  w.work.commit('next\n', { 'a.txt': longText(1) })
  const r = await w.push(['push', w.server.url, 'main:main'])
  t.not(r.code, 0)
  t.match(r.stderr, `! [remote rejected] main -> main (${REASON})`)
  t.match(r.stderr, /remote: portcullis: push refused\s*\n/)
  t.match(r.stderr, /remote: see the reason below/)
  t.equal(w.bare.git(['rev-parse', 'main']), w.base)
  t.equal(w.server.verdicts.length, 1)
  const head = w.server.verdicts[0]!.head
  t.equal(head.sideBand, 'side-band-64k')
  t.equal(head.reportStatus, 'report-status-v2')
  t.match(head.commands, [{ old: w.base, new: w.work.git(['rev-parse', 'HEAD']), ref: 'refs/heads/main' }])
})

t.test('every ref of a multi-ref push is reported rejected', async (t) => {
  const w = await setup(t, { decide: refuseAll('portcullis: refused') })
  w.work.commit('next\n', { 'a.txt': longText(1) })
  w.work.git(['branch', 'agent/x'])
  const r = await w.push(['push', w.server.url, 'main:main', 'agent/x:agent/x'])
  t.not(r.code, 0)
  t.match(r.stderr, '! [remote rejected] main -> main (portcullis: refused)')
  t.match(r.stderr, '! [remote rejected] agent/x -> agent/x (portcullis: refused)')
  t.notMatch(r.stderr, 'remote failed to report status')
})

t.test('a report-status (v1) client without side band still shows the reason', async (t) => {
  const w = await setup(t, {
    decide: refuseAll(REASON),
    stripCapabilities: ['report-status-v2', 'side-band-64k'],
  })
  w.work.commit('next\n', { 'a.txt': longText(1) })
  const r = await w.push(['push', w.server.url, 'main:main'])
  t.not(r.code, 0)
  t.match(r.stderr, `! [remote rejected] main -> main (${REASON})`)
  const head = w.server.verdicts[0]!.head
  t.equal(head.sideBand, 'none')
  t.equal(head.reportStatus, 'report-status')
})

t.test('a client that asked for no report-status gets HTTP 403 and git push fails', async (t) => {
  const w = await setup(t, { decide: refuseAll(REASON), stripCapabilities: ['report-status', 'report-status-v2'] })
  w.work.commit('next\n', { 'a.txt': longText(1) })
  const r = await w.push(['push', w.server.url, 'main:main'])
  t.not(r.code, 0)
  t.match(r.stderr, 'RPC failed; HTTP 403')
  t.equal(w.server.verdicts[0]!.head.reportStatus, 'none')
  t.equal(w.bare.git(['rev-parse', 'main']), w.base)
})

t.test('a fast-forward is proven from the pack and the replayed push lands', async (t) => {
  const w = await setup(t, { decide: requireFastForward })
  w.work.commit('one\n', { 'a.txt': longText(1) })
  const tip = w.work.commit('two\n', { 'a.txt': longText(2), 'b.txt': 'b\n' })
  const r = await w.push(['push', w.server.url, 'main:main'])
  t.equal(r.code, 0, r.stderr)
  t.equal(w.bare.git(['rev-parse', 'main']), tip)
  t.match(w.server.verdicts[0]!.fastForward, [{ kind: 'fast_forward', walked: 2 }])
})

t.test('a force push of an amended commit is not proven and is refused', async (t) => {
  const w = await setup(t, { decide: requireFastForward })
  const first = w.work.commit('one\n', { 'a.txt': longText(1) })
  t.equal((await w.push(['push', w.server.url, 'main:main'])).code, 0)
  w.work.git(['commit', '-q', '--amend', '-m', 'one, amended'])
  const r = await w.push(['push', '--force', w.server.url, 'main:main'])
  t.not(r.code, 0)
  t.match(r.stderr, '! [remote rejected] main -> main (portcullis: refs/heads/main is not a fast-forward)')
  t.equal(w.bare.git(['rev-parse', 'main']), first)
  t.match(w.server.verdicts[1]!.fastForward, [{ kind: 'not_proven', why: 'left_pack' }])
})

t.test('a branch deletion carries no pack and is refused with its reason', async (t) => {
  const w = await setup(t, { decide: refuseAll('portcullis: deleting branches is not allowed') })
  w.bare.git(['branch', 'old', 'main'])
  const r = await w.push(['push', w.server.url, ':refs/heads/old'])
  t.not(r.code, 0)
  t.match(r.stderr, '! [remote rejected] old (portcullis: deleting branches is not allowed)')
  const v = w.server.verdicts[0]!
  t.equal(v.head.expectsPack, false)
  t.equal(v.pack, null)
  t.equal(w.bare.git(['rev-parse', 'old']), w.base)
})

t.test('a push larger than http.postBuffer (probe, chunked body, spilled to disk) is proven and lands', async (t) => {
  const w = await setup(t, { decide: requireFastForward, memoryBytes: 64 * 1024 })
  const tip = w.work.commit('big\n', { 'big.bin': randomBytes(1536 * 1024) })
  const r = await w.push(['push', w.server.url, 'main:main'])
  t.equal(r.code, 0, r.stderr)
  t.equal(w.bare.git(['rev-parse', 'main']), tip)
  t.ok(w.server.probes.length >= 1, 'git probed with an empty command list first')
  await w.server.settled()
  const spillPath = w.server.spills.at(-1)
  t.type(spillPath, 'string', 'the body went to a temporary file')
  t.notOk(existsSync(spillPath!), 'and the file is gone once the request is done')
  t.match(w.server.verdicts[0]!.fastForward, [{ kind: 'fast_forward' }])
})

t.test('sha256 repositories: fast-forward lands, rewrite is refused', async (t) => {
  const w = await setup(t, { decide: requireFastForward, format: 'sha256' })
  const tip = w.work.commit('one\n', { 'a.txt': longText(1) })
  const ok = await w.push(['push', w.server.url, 'main:main'])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(w.bare.git(['rev-parse', 'main']), tip)
  t.equal(w.server.verdicts[0]!.head.objectFormat, 'sha256')
  w.work.git(['commit', '-q', '--amend', '-m', 'rewritten'])
  const r = await w.push(['push', '--force', w.server.url, 'main:main'])
  t.not(r.code, 0)
  t.match(r.stderr, '! [remote rejected] main -> main')
  t.equal(w.bare.git(['rev-parse', 'main']), tip)
})
