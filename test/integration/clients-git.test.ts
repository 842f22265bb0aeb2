import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { startGitServer, gitEnv, runGit, type GitServer } from '../helpers/git-server.js'
import { CLIENT_TIMEOUTS, groupYaml, pinnedUpstreamYaml, TOKEN } from '../helpers/config.js'

// Real git through the real proxy to a loopback smart-HTTP origin that the
// config pins as github.com (the proxy dials 127.0.0.1, never the real host).

function configFor(git: GitServer, access: 'read' | 'write'): string {
  return `${pinnedUpstreamYaml({ ports: [git.port], hosts: ['github.com'], caFile: git.ca.certFile, timeouts: CLIENT_TIMEOUTS })}${groupYaml([`github: { repos: ["acme/widgets"], access: ${access} }`])}`
}

/** A temp working area and the git env/args that route through `pc`. */
function client(t: Test, pc: Portcullis): { dir: string; env: NodeJS.ProcessEnv; via: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-git-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = gitEnv(dir, { GIT_SSL_CAINFO: join(pc.dir, 'ca.pem') })
  return { dir, env, via: ['-c', `http.proxy=http://ci:${TOKEN}@127.0.0.1:${pc.proxyPort}`] }
}

t.test('git over an intercepted github.com: repo rules decide clone and push', async (t) => {
  const git = await startGitServer(t, 'github.com', {
    'acme/widgets.git': 'widgets\n',
    'attacker/exfil.git': 'exfil\n',
  })
  const base = `https://github.com:${git.port}`
  const pc = await startPortcullis(t, configFor(git, 'read'))
  const { dir, env, via } = client(t, pc)

  t.test('cloning the allowed repo succeeds, intercepted and allowed by the github rule', async (t) => {
    const r = await runGit([...via, 'clone', `${base}/acme/widgets.git`, join(dir, 'widgets')], env)
    t.equal(r.code, 0, r.stderr)
    t.equal(readFileSync(join(dir, 'widgets', 'README'), 'utf8'), 'widgets\n')
    const head = await runGit(['rev-parse', 'HEAD'], env, { cwd: join(dir, 'widgets') })
    t.equal(head.stdout.trim(), git.revParse('acme/widgets.git'), 'the clone has the origin commit')
    // The origin: ref advertisement then upload-pack, and no proxy credentials.
    t.ok(
      git.seen.some(
        (s) =>
          s.method === 'GET' && s.url === '/acme/widgets.git/info/refs?service=git-upload-pack' && s.status === 200,
      ),
    )
    t.ok(git.seen.some((s) => s.method === 'POST' && s.url === '/acme/widgets.git/git-upload-pack' && s.status === 200))
    t.notOk(
      git.seen.some((s) => s.proxyAuthorization !== undefined),
      'no Proxy-Authorization upstream',
    )
    // The records.
    // git's libcurl (http.proxyAuthMethod=anyauth) first CONNECTs without credentials and gets a 407; then Basic.
    const connect = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === git.port && x.decision === 'allow',
    )
    t.match(connect, { tls: 'intercept', decision: 'allow', agent: 'ci', host: 'github.com' })
    const refs = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'GET' && x.path === '/acme/widgets.git/info/refs',
    )
    t.match(refs, {
      tls: 'intercept',
      decision: 'allow',
      reason: 'allowed',
      rule: 'g.allow[0]',
      scheme: 'https',
      host: 'github.com',
      port: git.port,
    })
    const rpc = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'POST' && x.path === '/acme/widgets.git/git-upload-pack',
    )
    t.match(rpc, { tls: 'intercept', decision: 'allow', rule: 'g.allow[0]' })
  })

  t.test('cloning another repo on the same host fails with the denial shown by git', async (t) => {
    const before = git.seen.length
    const r = await runGit([...via, 'clone', `${base}/attacker/exfil.git`, join(dir, 'exfil')], env)
    t.not(r.code, 0)
    t.match(r.stderr, /The requested URL returned error: 403/)
    // git relays a text/plain error body as `remote:` lines: the agent sees the reason and request id.
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'GET' && x.path === '/attacker/exfil.git/info/refs',
    )
    t.match(rec, { tls: 'intercept', decision: 'deny', reason: 'denied_path', rule: 'g.allow[0]' })
    // The body names the full target, query string included, so the user sees exactly what was refused.
    t.match(
      r.stderr,
      new RegExp(
        `remote: portcullis blocked GET https://github\\.com:${git.port}/attacker/exfil\\.git/info/refs\\?service=git-upload-pack for agent ci: this path is not allowed for this host`,
      ),
    )
    t.match(r.stderr, `Request id ${rec.id}`)
    t.match(r.stderr, `portcullis approve ${rec.id}`)
    t.equal(git.seen.length, before, 'the origin received nothing')
  })

  t.test('under access: read a push is refused and the ref does not move', async (t) => {
    const work = join(dir, 'widgets')
    writeFileSync(join(work, 'CHANGE'), 'read-only push\n')
    t.equal((await runGit(['add', 'CHANGE'], env, { cwd: work })).code, 0)
    t.equal((await runGit(['commit', '-q', '-m', 'try push'], env, { cwd: work })).code, 0)
    const before = git.revParse('acme/widgets.git')
    const seenBefore = git.seen.length
    const r = await runGit([...via, 'push', 'origin', 'HEAD:main'], env, { cwd: work })
    t.not(r.code, 0)
    t.match(r.stderr, /The requested URL returned error: 403/)
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.decision === 'deny' && x.path === '/acme/widgets.git/info/refs',
    )
    t.match(rec, { method: 'GET', tls: 'intercept', reason: 'denied_repo_write', detail: 'read_only' })
    t.match(r.stderr, `Request id ${rec.id}`)
    t.match(r.stderr, /pushing needs access: write/, 'git shows what would allow it')
    t.equal(git.revParse('acme/widgets.git'), before, 'the bare repo ref is unchanged')
    t.equal(git.seen.length, seenBefore, 'the origin received nothing')
    t.notOk(git.seen.some((s) => s.url.includes('receive-pack')))
  })

  t.test('under access: write a push to an agent branch succeeds and the ref moves', async (t) => {
    const pcw = await startPortcullis(t, configFor(git, 'write'))
    const w = client(t, pcw)
    const clone = join(w.dir, 'widgets')
    const c = await runGit([...w.via, 'clone', `${base}/acme/widgets.git`, clone], w.env)
    t.equal(c.code, 0, c.stderr)
    writeFileSync(join(clone, 'CHANGE'), 'write push\n')
    t.equal((await runGit(['add', 'CHANGE'], w.env, { cwd: clone })).code, 0)
    t.equal((await runGit(['commit', '-q', '-m', 'allowed push'], w.env, { cwd: clone })).code, 0)
    const local = (await runGit(['rev-parse', 'HEAD'], w.env, { cwd: clone })).stdout.trim()
    const r = await runGit([...w.via, 'push', 'origin', 'HEAD:refs/heads/agent/ci/change'], w.env, { cwd: clone })
    t.equal(r.code, 0, r.stderr)
    t.equal(git.revParse('acme/widgets.git', 'agent/ci/change'), local, 'the branch was created at the pushed commit')
    t.ok(
      git.seen.some((s) => s.method === 'POST' && s.url === '/acme/widgets.git/git-receive-pack' && s.status === 200),
    )
    const rec = await pcw.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'POST' && x.path === '/acme/widgets.git/git-receive-pack',
    )
    t.match(rec, { tls: 'intercept', decision: 'allow', reason: 'allowed', rule: 'g.allow[0]' })
  })
})
