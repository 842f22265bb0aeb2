import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, type Origin } from '../helpers/origins.js'
import { startGitServer, gitEnv, runGit, type GitServer } from '../helpers/git-server.js'
import { curl } from '../helpers/clients.js'
import { CLIENT_TIMEOUTS, pinnedUpstreamYaml, TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { runPortcullis } from '../helpers/spawn-portcullis.js'
import { CLOSED_PORT } from '../helpers/ports.js'
import { rec } from '../helpers/decision-records.js'
import { run, type RunResult } from '../helpers/spawn.js'
import { MAX_RECORDS } from '../../src/cli/record-source.js'

// SPEC §10 through the real program: traffic recorded by a real proxy (denied siblings, a host denied on
// purpose, audit-mode agents, a git clone of an unlisted repo through a loopback git server), then
// `portcullis suggest` and `portcullis replay` (dist/cli/main.js) on the log file it wrote and on its admin API.

function configFor(origin: Origin, git: GitServer): string {
  const hosts = [
    'origin.test',
    'a.sib.test',
    'b.sib.test',
    'uploads.sib.test',
    'c.cdn.test',
    'd.cdn.test',
    'github.com',
  ]
  return `${pinnedUpstreamYaml({ ports: [origin.port, git.port], hosts, caFile: git.ca.certFile, timeouts: CLIENT_TIMEOUTS })}groups:
  g:
    allow:
      - host: origin.test                 # the one origin everybody needs
      - github: { repos: ["acme/widgets"], access: read }
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
    deny:
      - host: uploads.sib.test            # denied on purpose
  - id: auditor
    token: ${TOKEN_HASH}
    groups: [g]
    mode: audit
`
}

interface Setup {
  readonly pc: Portcullis
  readonly origin: Origin
  readonly git: GitServer
  readonly log: string
}

/** The CLI as a user runs it, from `cwd` (the diff names the config relative to it). */
function cli(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runPortcullis(args, { cwd, env, timeoutMs: 60_000 })
}

async function record(t: Test): Promise<Setup> {
  const origin = await startHttpOrigin(t)
  const git = await startGitServer(t, 'github.com', {
    'acme/widgets.git': 'widgets\n',
    'attacker/exfil.git': 'exfil\n',
  })
  const pc = await startPortcullis(t, configFor(origin, git))
  const get = (agent: string, url: string): ReturnType<typeof curl> =>
    curl(['--proxy', pc.proxyUrl, '--proxy-user', `${agent}:${TOKEN}`, url])
  const p = origin.port
  t.equal((await get('ci', `http://a.sib.test:${p}/one`)).status, 403)
  t.equal((await get('ci', `http://b.sib.test:${p}/two`)).status, 403)
  t.equal((await get('ci', `http://b.sib.test:${p}/three`)).status, 403)
  t.equal((await get('ci', `http://uploads.sib.test:${p}/up`)).status, 403)
  t.equal((await get('ci', `http://origin.test:${p}/ok`)).status, 200)
  t.equal((await get('auditor', `http://c.cdn.test:${p}/x`)).status, 200, 'audit mode lets it through')
  t.equal((await get('auditor', `http://d.cdn.test:${p}/y`)).status, 200)
  const home = mkdtempSync(join(tmpdir(), 'portcullis-lifecycle-git-'))
  t.teardown(() => rmSync(home, { recursive: true, force: true }))
  const env = gitEnv(home, { GIT_SSL_CAINFO: join(pc.dir, 'ca.pem') })
  const clone = (agent: string, repo: string): ReturnType<typeof runGit> =>
    runGit(
      [
        '-c',
        `http.proxy=http://${agent}:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
        'clone',
        `https://github.com:${git.port}/${repo}.git`,
        join(home, `${agent}-${repo.replace('/', '-')}`),
      ],
      env,
    )
  t.not((await clone('ci', 'attacker/exfil')).code, 0, 'an unlisted repo is refused')
  t.equal((await clone('auditor', 'attacker/exfil')).code, 0, 'audit mode clones it')
  t.equal((await clone('ci', 'acme/widgets')).code, 0, 'the listed repo clones')
  await pc.waitForRecord(
    (r) => r.event === 'decision' && r.agent === 'auditor' && r.path?.endsWith('/git-upload-pack') === true,
  )
  const log = join(pc.dir, 'portcullis.log')
  writeFileSync(log, `${pc.logLines().join('\n')}\n`)
  return { pc, origin, git, log }
}

t.test('suggest and replay on the log file and the admin API of a real proxy', async (t) => {
  const s = await record(t)
  const { pc, log } = s
  const dir = pc.dir

  t.test('suggest from the log file: per agent, with counts, folding only where safe, a repo rule', async (t) => {
    const r = await cli(['suggest', '--config', 'portcullis.yaml', '--source', log, '--since', '1h'], dir)
    t.equal(r.code, 0, r.stderr)
    const out = r.stdout
    t.match(out, /agent ci: 3 rules for \d+ requests; add under agents\[0\]\.allow:/)
    t.match(out, / {2}- github: \{ repos: \[attacker\/exfil\], access: read \}/)
    t.match(out, / {2}# suggested: 2 denied requests by ci \(b\.sib\.test:\d+ ×2\)/)
    t.match(out, / {2}- host: a\.sib\.test\n {4}methods: \[GET\]/)
    t.match(out, / {2}- host: b\.sib\.test\n {4}methods: \[GET\]/)
    t.match(
      out,
      /note: not folded into \*\.sib\.test: uploads\.sib\.test is denied on purpose \(agents\.ci\.deny\[0\]\)/,
    )
    t.match(out, /agent auditor: 2 rules/)
    t.match(out, / {2}- host: "\*\.cdn\.test"\n {4}methods: \[GET\]/)
    t.match(out, /warning: admits every subdomain of cdn\.test, not only the 2 seen/)
    t.match(
      out,
      /not suggested:\n( {2}.*\n)* {2}denied_by_rule: 1 request to uploads\.sib\.test:\d+ \(agents\.ci\.deny\[0\]\)/,
    )
    t.notMatch(out, /still denied/, 'every suggested rule opens what it answers')
  })

  const next = join(dir, 'next')
  mkdirSync(next)

  t.test('suggest --diff applies with git apply and the result passes check', async (t) => {
    const r = await cli(['suggest', '--config', 'portcullis.yaml', '--source', log, '--since', '1h', '--diff'], dir)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^--- a\/portcullis\.yaml\n\+\+\+ b\/portcullis\.yaml\n@@ /)
    t.notMatch(r.stdout, /^-[^-]/m, 'only additions')
    t.match(r.stderr, /agent auditor: host: "\*\.cdn\.test", methods: \[GET\]/)
    copyFileSync(join(dir, 'portcullis.yaml'), join(next, 'portcullis.yaml'))
    writeFileSync(join(next, 'p.diff'), r.stdout)
    const applied = await run('git', ['apply', 'p.diff'], { cwd: next, env: { PATH: process.env.PATH, HOME: next } })
    t.equal(applied.code, 0, applied.stderr)
    const text = readFileSync(join(next, 'portcullis.yaml'), 'utf8')
    t.match(text, / {6}- host: origin\.test {17}# the one origin everybody needs\n/, 'comments and alignment kept')
    const check = await cli(['check', '--config', join(next, 'portcullis.yaml')], dir)
    t.equal(check.code, 0, check.stderr)
  })

  t.test('replay under the suggested config: what was denied now passes, nothing new is denied', async (t) => {
    const r = await cli(
      [
        'replay',
        '--config',
        join(next, 'portcullis.yaml'),
        '--source',
        log,
        '--since',
        '1h',
        '--fail-on-new-denials',
        '--json',
      ],
      dir,
    )
    t.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as {
      totals: Record<string, number>
      flips: Array<{ direction: string; agent: string; host: string; to: { rule: string | null } }>
      undetermined: Array<{ host: string; missing: string }>
    }
    t.equal(report.totals.allowToDeny, 0)
    const opened = report.flips.filter((f) => f.direction === 'deny_to_allow').map((f) => `${f.agent} ${f.host}`)
    for (const h of [
      'ci a.sib.test',
      'ci b.sib.test',
      'auditor c.cdn.test',
      'auditor d.cdn.test',
      'auditor github.com',
    ])
      t.ok(opened.includes(h), `${h} flips to allowed`)
    t.notOk(opened.includes('ci uploads.sib.test'), 'the host denied on purpose stays denied')
    t.match(
      report.undetermined,
      [{ host: 'github.com', missing: 'query' }],
      'info/refs without its query is not guessed',
    )
  })

  t.test('replay against the old config: the narrowed query settles the clone of the listed repo', async (t) => {
    const r = await cli(
      [
        'replay',
        '--config',
        join(next, 'portcullis.yaml'),
        '--against',
        'portcullis.yaml',
        '--source',
        log,
        '--since',
        '1h',
      ],
      dir,
    )
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /against portcullis\.yaml/)
    t.match(r.stdout, /allow → deny: 0 requests/)
    t.match(
      r.stdout,
      /deny → allow: \d+ requests\n( {2}.*\n)* {2}ci {2}a\.sib\.test:\d+ {2}denied_no_rule \(-\) → allowed by agents\.ci\.allow\[\d\]/,
    )
  })

  t.test('a config that drops a rule in use fails replay --fail-on-new-denials', async (t) => {
    const text = readFileSync(join(dir, 'portcullis.yaml'), 'utf8').replace(
      '      - host: origin.test                 # the one origin everybody needs\n',
      '',
    )
    writeFileSync(join(next, 'bad.yaml'), text)
    const r = await cli(
      ['replay', '--config', join(next, 'bad.yaml'), '--source', log, '--since', '1h', '--fail-on-new-denials'],
      dir,
    )
    t.equal(r.code, 1, r.stderr)
    t.match(
      r.stdout,
      /allow → deny: 1 request\n {2}ci {2}origin\.test:\d+ {2}allowed by g\.allow\[0\] → denied_no_rule \(-\) {2}1 request \[GET\]; e\.g\. \/ok/,
    )
  })

  t.test('suggest and replay read the admin API of the running instance', async (t) => {
    const env = { PORTCULLIS_ADMIN_TOKEN: pc.adminToken }
    const r = await cli(
      ['suggest', '--config', 'portcullis.yaml', '--source', 'admin', '--admin', pc.adminUrl, '--agent', 'auditor'],
      dir,
      env,
    )
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /from admin API http:\/\/127\.0\.0\.1:\d+ \(memory\)/)
    t.match(r.stdout, / {2}- host: "\*\.cdn\.test"/)
    t.notMatch(r.stdout, /agent ci/, '--agent keeps to one agent')
    const replay = await cli(
      ['replay', '--config', join(next, 'portcullis.yaml'), '--source', 'admin', '--admin', pc.adminUrl, '--json'],
      dir,
      env,
    )
    t.equal(replay.code, 0, replay.stderr)
    t.ok((JSON.parse(replay.stdout) as { totals: { denyToAllow: number } }).totals.denyToAllow >= 4)
  })

  t.test('GET /api/suggest runs the same logic for the page’s filter', async (t) => {
    const res = await fetch(`${pc.adminUrl}/api/suggest?agent=ci&host=*.sib.test`, {
      headers: { authorization: `Bearer ${pc.adminToken}` },
    })
    t.equal(res.status, 200)
    const body = (await res.json()) as {
      source: string
      targets: Array<{ key: string; yaml: string; notes: string[] }>
      not_suggested: Array<{ reason: string }>
    }
    t.equal(body.source, 'memory')
    t.same(
      body.targets.map((x) => x.key),
      ['agents[0].allow'],
    )
    t.match(
      body.targets[0]?.yaml,
      /^# suggested: 1 denied request by ci \(a\.sib\.test:\d+ ×1\)[^\n]*\n# warning: seen only once\n- host: a\.sib\.test\n {2}methods: \[GET\]\n/,
    )
    t.match(body.targets[0]?.notes, [/uploads\.sib\.test is denied on purpose/])
    t.match(body.not_suggested, [{ reason: 'denied_by_rule' }])
    const bad = await fetch(`${pc.adminUrl}/api/suggest?group=nope`, {
      headers: { authorization: `Bearer ${pc.adminToken}` },
    })
    t.equal(bad.status, 404)
    const unauth = await fetch(`${pc.adminUrl}/api/suggest`)
    t.equal(unauth.status, 401)
  })
})

t.test('suggest reads an ECS log', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${origin.port}]
  resolve: { e.sib.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
telemetry:
  log: { format: ecs }
agents:
  - { id: ci, token: ${TOKEN_HASH} }
`,
  )
  const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://e.sib.test:${origin.port}/z`])
  t.equal(r.status, 403)
  await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/z')
  t.ok(
    pc.logLines().some((l) => l.includes('"destination.domain":"e.sib.test"')),
    'the log is ECS',
  )
  const log = join(pc.dir, 'ecs.log')
  const lines = pc.logLines()
  // What a log file may also hold: a run of NULs with no newline (a copytruncate rotation) longer
  // than any record, and a record edited to a host the proxy never decides as written.
  const edited = lines
    .filter((l) => l.includes('"destination.domain":"e.sib.test"') && l.includes('"event.action":"decision"'))
    .map((l) => l.replace('"destination.domain":"e.sib.test"', '"destination.domain":"EXAMPLE.COM."'))
  t.ok(edited.length > 0, 'a decision line to edit')
  writeFileSync(log, `${'\0'.repeat(17 * 1024 * 1024)}\n${[...lines, ...edited].join('\n')}\n`)
  const out = await cli(['suggest', '--config', 'portcullis.yaml', '--source', log, '--json'], pc.dir)
  t.equal(out.code, 0, out.stderr)
  const report = JSON.parse(out.stdout) as {
    targets: Array<{ name: string; rules: Array<{ rule: unknown; requests: number }> }>
    not_suggested: Array<{ hosts: string[]; why: string }>
  }
  t.same(
    report.targets.map((x) => [x.name, x.rules.map((e) => e.rule)]),
    [['ci', [{ host: 'e.sib.test', methods: ['GET'] }]]],
  )
  t.match(report.not_suggested, [{ hosts: ['EXAMPLE.COM.'], why: /never decides as written/ }])
  const replayed = await cli(['replay', '--config', 'portcullis.yaml', '--source', log, '--json'], pc.dir)
  t.equal(replayed.code, 0, replayed.stderr)
})

t.test('suggest --diff on a config whose agents list is written inline', async (t) => {
  const now = new Date().toISOString()
  const denial = { ...rec('bot', 'GET https://api.example.org/v1/x'), time: now }
  const dir = t.testdir({
    'portcullis.yaml': `agents: [ { id: ci, source_cidrs: [127.0.0.1/32] }, { id: bot, source_cidrs: [127.0.0.2/32] } ]\n`,
    'proxy.log': `${JSON.stringify(denial)}\n`,
  })
  const r = await cli(
    ['suggest', '--config', 'portcullis.yaml', '--source', 'proxy.log', '--since', '1h', '--diff'],
    dir,
  )
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^\+ {4}allow:$/m)
  t.match(r.stdout, /^\+ {6}- host: api\.example\.org$/m)
})

t.test('usage errors exit 2', async (t) => {
  const dir = t.testdir({ 'portcullis.yaml': 'agents:\n  - { id: ci, source_cidrs: [127.0.0.1/32] }\n' })
  t.equal((await cli(['suggest', '--agent', 'ci', '--group', 'g'], dir)).code, 2)
  t.equal(
    (await cli(['suggest', '--config', 'portcullis.yaml', '--agent', 'nobody', '--source', 'x.log'], dir)).code,
    2,
  )
  t.equal((await cli(['suggest', '--config', 'portcullis.yaml', '--since', 'yesterday'], dir)).code, 2)
  t.equal((await cli(['replay', '--config', 'portcullis.yaml', 'extra'], dir)).code, 2)
  const missing = await cli(['replay', '--config', 'portcullis.yaml', '--source', 'missing.log'], dir)
  t.equal(missing.code, 2, 'a source that cannot be read is an input error: 1 is a new denial')
  t.match(missing.stderr, /cannot read missing\.log: ENOENT \(PC_ERR_RECORDS_UNREADABLE\)/)
  const directory = await cli(['replay', '--config', 'portcullis.yaml', '--source', '.', '--fail-on-new-denials'], dir)
  t.equal(directory.code, 2)
  t.match(directory.stderr, /cannot read \.: EISDIR/)
})

t.test('a source that is not a Portcullis log is an error; unreadable lines are counted', async (t) => {
  const now = new Date().toISOString()
  const denial = { ...rec('ci', 'GET https://api.example.org/v1/x'), time: now }
  const hostile = { ...rec('ci', 'GET https://api.example.org/v1/y'), time: now, host: 'evil\n  forged: line' }
  const dir = t.testdir({
    'portcullis.yaml': 'agents:\n  - { id: ci, source_cidrs: [127.0.0.1/32] }\n',
    passwd: 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n',
    'mixed.log': `root:x:0:0\n${JSON.stringify({ level: 'info', code: 'PC_STARTED' })}\n{"event":"decision"}\n${JSON.stringify(denial)}\n${JSON.stringify(hostile)}\n`,
  })
  const passwd = await cli(
    ['replay', '--config', 'portcullis.yaml', '--source', 'passwd', '--fail-on-new-denials'],
    dir,
  )
  t.equal(passwd.code, 2, r(passwd))
  t.match(passwd.stderr, /log file passwd holds no Portcullis decision record \(2 unreadable lines\)/)
  t.equal((await cli(['suggest', '--config', 'portcullis.yaml', '--source', 'passwd'], dir)).code, 2)
  const replay = await cli(['replay', '--config', 'portcullis.yaml', '--source', 'mixed.log', '--json'], dir)
  t.equal(replay.code, 0, replay.stderr)
  t.match(replay.stderr, /skipped 2 unreadable lines of log file mixed\.log/)
  t.equal((JSON.parse(replay.stdout) as { unreadable_lines: number }).unreadable_lines, 2)
  const suggest = await cli(['suggest', '--config', 'portcullis.yaml', '--source', 'mixed.log'], dir)
  t.equal(suggest.code, 0, suggest.stderr)
  t.match(suggest.stderr, /skipped 2 unreadable lines/)
  t.match(suggest.stdout, /evil\\x0a {2}forged: line/, 'a control character in a host is escaped')
  t.notMatch(suggest.stdout, /^ {2}forged: line/m)
})

function r(x: RunResult): string {
  return `${x.stdout}${x.stderr}`
}

t.test('--source redis with nothing listening says it cannot reach it, at once', async (t) => {
  const port = CLOSED_PORT
  const dir = t.testdir({
    'portcullis.yaml': `telemetry: { redis: { url: "redis://:pw@127.0.0.1:${port}" } }\nagents:\n  - { id: ci, source_cidrs: [127.0.0.1/32] }\n`,
  })
  const started = Date.now()
  const r = await cli(['replay', '--config', 'portcullis.yaml', '--source', 'redis'], dir)
  t.equal(r.code, 2)
  t.match(r.stderr, new RegExp(`cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  t.ok(Date.now() - started < 4000, 'without waiting out the 5 s timeout')
})

t.test('--source admin with nothing listening is an input error (2), not a new denial (1)', async (t) => {
  const dir = t.testdir({ 'portcullis.yaml': 'agents:\n  - { id: ci, source_cidrs: [127.0.0.1/32] }\n' })
  const r = await cli(
    ['replay', '--config', 'portcullis.yaml', '--admin', `http://127.0.0.1:${CLOSED_PORT}`, '--fail-on-new-denials'],
    dir,
    { PORTCULLIS_ADMIN_TOKEN: 'some-admin-token-0123456789' },
  )
  t.equal(r.code, 2)
  t.match(r.stderr, /cannot read records from the admin API: .*\(PC_ERR_RECORDS_UNREADABLE\)/)
})

t.test('replay --fail-on-new-denials never passes on records it did not read', async (t) => {
  const dir = t.testdir({
    'new.yaml': 'agents:\n  - { id: ci, source_cidrs: [127.0.0.1/32] }\n',
  })
  const base = Date.now() - 30 * 60_000
  const line = (i: number, more: Record<string, unknown> = {}): string =>
    `${JSON.stringify({ ...rec('ci', 'GET http://d.test/x'), time: new Date(base + i).toISOString(), id: `r${i}`, ...more })}\n`
  // What passed under the old policy and NEW denies: one allow, then more denials than replay holds.
  const allow = line(0, { host: 'a.test', decision: 'allow', reason: 'allowed', rule: 'agents.ci.allow[0]' })
  writeFileSync(join(dir, 'alone.log'), allow)
  const alone = await cli(['replay', '--config', 'new.yaml', '--source', 'alone.log', '--fail-on-new-denials'], dir)
  t.equal(alone.code, 1, 'the allow alone is a new denial')
  const out = createWriteStream(join(dir, 'big.log'))
  out.write(allow)
  for (let i = 1; i <= MAX_RECORDS + 1; i++) if (!out.write(line(i))) await once(out, 'drain')
  out.end()
  await once(out, 'finish')
  const r = await cli(['replay', '--config', 'new.yaml', '--source', 'big.log', '--fail-on-new-denials', '--json'], dir)
  t.equal(r.code, 2, 'the older records were not read: the gate fails')
  t.match(r.stderr, /--fail-on-new-denials cannot pass: the window holds more than 500000 records/)
  t.equal((JSON.parse(r.stdout) as { truncated: boolean }).truncated, true)
  const plain = await cli(['replay', '--config', 'new.yaml', '--source', 'big.log'], dir)
  t.equal(plain.code, 0, 'without the gate it is a report, cut as stderr says')
  t.match(plain.stderr, /only the newest 500000 records were read/)
})

t.test('suggest lists a request whose recorded path was cut as not suggested, and suggests the rest', async (t) => {
  const now = new Date().toISOString()
  const long = `/v2/${'A'.repeat(2000)}`
  const cutPath = { path: `${long.slice(0, 1023)}…`, path_sha256: createHash('sha256').update(long).digest('hex') }
  const records = [
    { ...rec('ci', 'GET https://api.example.org/v2/x'), ...cutPath, reason: 'denied_path', rule: null, time: now },
    { ...rec('ci', 'GET https://api.example.org/v2/ok'), reason: 'denied_path', time: now },
  ]
  const dir = t.testdir({
    'portcullis.yaml': `agents:
  - id: ci
    source_cidrs: [127.0.0.1/32]
    allow:
      - { host: api.example.org, methods: [GET], paths: ["/v1/**"] }
`,
    'proxy.log': records.map((r) => JSON.stringify(r)).join('\n'),
  })
  const r = await cli(['suggest', '--config', 'portcullis.yaml', '--source', 'proxy.log', '--json'], dir)
  t.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout) as {
    targets: Array<{ rules: Array<{ rule: unknown }> }>
    not_suggested: Array<{ reason: string; requests: number; why: string }>
  }
  t.same(
    report.targets.flatMap((x) => x.rules.map((e) => e.rule)),
    [{ host: 'api.example.org', methods: ['GET'], paths: ['/v2/ok'] }],
  )
  t.match(report.not_suggested, [{ reason: 'denied_path', requests: 1, why: /first 1,024 characters of its path/ }])
})
