import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl, rawExchange } from '../helpers/clients.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { runPortcullis } from '../helpers/spawn-portcullis.js'

interface ApprovalAnswer {
  id: string
  covers: string
  scope: string
  expires_at: string
  expires_in_s: number
  agent: string
  host: string
  path: string | null
}

t.test('a blocked request becomes a scoped, expiring, audited approval', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const blocked = await curl([...proxy, `http://origin.test:${origin.port}/private/a.txt`])
  t.equal(blocked.headers['x-portcullis-decision'], 'denied_path')
  const requestId = blocked.headers['x-portcullis-request-id'] as string

  t.test('the admin API refuses bad approvals clearly', async (t) => {
    t.equal((await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId }, 'wrong')).status, 401)
    t.equal((await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: 'nope' })).status, 404)
    t.equal(
      (await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId, scope: 'everything' })).status,
      400,
    )
    t.equal(
      (await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId, ttl: 'forever' })).status,
      400,
    )
    t.match(await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId, ttl: '1ms' }), {
      status: 400,
      body: { error: 'bad_ttl' },
    })
  })

  t.test(
    'a path longer than records keep: exact is refused (it could match nothing), path-prefix opens it',
    async (t) => {
      const long = `/private/${'a'.repeat(1500)}`
      const denied = await curl([...proxy, `http://origin.test:${origin.port}${long}`])
      t.equal(denied.headers['x-portcullis-decision'], 'denied_path')
      const id = denied.headers['x-portcullis-request-id'] as string
      t.match(await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: id, scope: 'exact' }), {
        status: 409,
        body: { error: 'path_too_long' },
      })
      const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
        request_id: id,
        scope: 'path-prefix',
      })
      t.equal(made.status, 201)
      t.ok(
        await until(
          async () => (await curl([...proxy, `http://origin.test:${origin.port}${long}`])).status === 200,
          2000,
        ),
        'the long path passes under the prefix',
      )
      await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)
      t.ok(
        await until(
          async () => (await curl([...proxy, `http://origin.test:${origin.port}${long}`])).status === 403,
          2000,
        ),
        'closed again once revoked',
      )
    },
  )

  t.test('an exact approval opens that request and nothing else, until revoked', async (t) => {
    const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      scope: 'exact',
      ttl: '2h',
      reason: 'needed for the build',
      approved_by: 'alice',
    })
    t.equal(made.status, 201)
    t.match(made.body, { scope: 'exact', agent: 'ci', host: 'origin.test', path: '/private/a.txt' })
    t.ok(made.body.expires_in_s > 7000 && made.body.expires_in_s <= 7200, 'ttl applied')
    const audit = await pc.waitForRecord((r) => r.event === 'approval' && r.approval_id === made.body.id)
    t.match(audit, { action: 'create', actor: 'alice', reason: 'needed for the build', request_id: requestId })

    t.ok(
      await until(
        async () => (await curl([...proxy, `http://origin.test:${origin.port}/private/a.txt`])).status === 200,
        1000,
      ),
      'the same request passes within a second',
    )
    const rec = await pc.waitForRecord(
      (r) => r.event === 'decision' && r.path === '/private/a.txt' && r.decision === 'allow',
    )
    t.equal(rec.event === 'decision' && rec.rule, `approval:${made.body.id}`)
    t.equal(
      (await curl([...proxy, `http://origin.test:${origin.port}/private/b.txt`])).headers['x-portcullis-decision'],
      'denied_path',
      'an exact approval does not open other paths',
    )
    t.equal(
      (await curl([...proxy, '-X', 'POST', '-d', 'x', `http://origin.test:${origin.port}/private/a.txt`])).headers[
        'x-portcullis-decision'
      ],
      'denied_path',
      'nor other methods',
    )

    const listed = await adminCall<{ approvals: ApprovalAnswer[] }>(pc.adminUrl, 'GET', '/api/approvals')
    t.ok(listed.body.approvals.some((a) => a.id === made.body.id))
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)).status, 200)
    t.ok(
      await until(
        async () => (await curl([...proxy, `http://origin.test:${origin.port}/private/a.txt`])).status === 403,
        1000,
      ),
      'revocation takes effect within a second',
    )
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)).status, 404)
    for (const bad of ['/api/approvals/%zz', '/api/approvals/%', '/api/sandboxes/%E0%A4%A'])
      t.match(await adminCall(pc.adminUrl, 'DELETE', bad), { status: 400, body: { error: 'bad_id' } }, bad)
  })

  t.test('a path-prefix approval opens the directory for the same method, not its siblings', async (t) => {
    const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      scope: 'path-prefix',
      ttl: '1h',
      reason: 'dir',
    })
    t.equal(made.status, 201)
    t.equal(made.body.covers, `GET origin.test:${origin.port}/private/…`)
    t.equal((await curl([...proxy, `http://origin.test:${origin.port}/private/other/c.txt`])).status, 200)
    t.equal((await curl([...proxy, `http://origin.test:${origin.port}/privateer/c.txt`])).status, 403)
    t.equal(
      (await curl([...proxy, '-X', 'DELETE', `http://origin.test:${origin.port}/private/other/c.txt`])).headers[
        'x-portcullis-decision'
      ],
      'denied_path',
      'nor another method',
    )
    await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)
  })

  t.test('a path-prefix approval of a top-level path opens that path and below, not the host', async (t) => {
    const top = await curl([...proxy, `http://origin.test:${origin.port}/topfile`])
    t.equal(top.headers['x-portcullis-decision'], 'denied_path')
    const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: top.headers['x-portcullis-request-id'],
      scope: 'path-prefix',
      ttl: '1h',
      reason: 'top',
    })
    t.equal(made.body.covers, `GET origin.test:${origin.port}/topfile and below`)
    t.ok(
      await until(
        async () => (await curl([...proxy, `http://origin.test:${origin.port}/topfile`])).status === 200,
        1000,
      ),
    )
    t.equal((await curl([...proxy, `http://origin.test:${origin.port}/topfile/x`])).status, 200)
    t.equal(
      (await curl([...proxy, `http://origin.test:${origin.port}/other`])).status,
      403,
      'the rest of the host stays closed',
    )
    t.equal((await curl([...proxy, `http://origin.test:${origin.port}/topfilex`])).status, 403)
    await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}?by=bob`)
    const revoked = await pc.waitForRecord(
      (r) => r.event === 'approval' && r.approval_id === made.body.id && r.action === 'revoke',
    )
    t.match(revoked, { actor: 'bob' })
  })

  t.test('a denied CONNECT is approved exact (that tunnel) or host, never path-prefix', async (t) => {
    const connect = `CONNECT elsewhere.test:${origin.port} HTTP/1.1\r\nHost: elsewhere.test:${origin.port}\r\nProxy-Authorization: Basic ${Buffer.from(`ci:${TOKEN}`).toString('base64')}\r\n\r\n`
    // Answered 200 and then explained inside TLS to an agent that trusts the CA: the record has the denial.
    void rawExchange(pc.proxyPort, connect, 500)
    const record = await pc.waitForRecord(
      (r) => r.event === 'decision' && r.host === 'elsewhere.test' && r.method === 'CONNECT',
    )
    t.match(record, { decision: 'deny', reason: 'denied_no_rule' })
    const id = String(record.id)
    const narrow = await adminCall<{ error: string; message: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: id,
      scope: 'path-prefix',
    })
    t.equal(narrow.status, 409, 'path-prefix would have opened the whole tunnel')
    t.match(narrow.body, { error: 'scope_needs_path', message: /a CONNECT has no path/ })
    const exact = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: id,
      scope: 'exact',
    })
    t.equal(exact.status, 201)
    t.equal(exact.body.covers, `CONNECT elsewhere.test:${origin.port}`)
    await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${exact.body.id}`)
  })

  t.test('a reload that changes approvals.default_ttl applies to the next approval', async (t) => {
    pc.rewriteConfig(
      `${originOnlyYaml([origin.port], { paths: ['/public/**'] })}\napprovals: { file: ${JSON.stringify(join(pc.dir, 'approvals.yaml'))}, default_ttl: 1h }\n`,
    )
    const reloaded = await adminCall(pc.adminUrl, 'POST', '/api/reload')
    t.equal(reloaded.status, 200, JSON.stringify(reloaded.body))
    const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId })
    t.equal(made.status, 201)
    t.ok(made.body.expires_in_s <= 3600, `1h, not the 24h it started with (${made.body.expires_in_s} s)`)
    await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${made.body.id}`)
  })

  t.test('an approval expires by itself', async (t) => {
    const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
      scope: 'host',
      ttl: '1s',
      reason: 'brief',
    })
    t.equal(made.status, 201)
    t.equal((await curl([...proxy, `http://origin.test:${origin.port}/anything`])).status, 200)
    t.ok(
      await until(
        async () => (await curl([...proxy, `http://origin.test:${origin.port}/anything`])).status === 403,
        3000,
      ),
      'denied again after the ttl',
    )
  })
})

t.test(
  'an approvals file the proxy cannot write: 503 naming the file and the OS error, logged, nothing made',
  async (t) => {
    const origin = await startHttpOrigin(t)
    // Nothing can be created in /proc, whoever runs the test (root included); reading it is ENOENT.
    // (Not in a directory under it: node's recursive mkdir there never settles.)
    const file = '/proc/portcullis-test-approvals.yaml'
    const pc = await startPortcullis(
      t,
      originOnlyYaml([origin.port], { paths: ['/public/**'], extra: `approvals: { file: ${file} }` }),
    )
    const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
    const url = `http://origin.test:${origin.port}/private/a.txt`
    const blocked = await curl([...proxy, url])
    const requestId = blocked.headers['x-portcullis-request-id'] as string
    const made = await adminCall<{ error: string; message: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: requestId,
    })
    t.equal(made.status, 503)
    t.equal(made.body.error, 'approvals_unavailable')
    t.match(made.body.message, `cannot write approvals.file ${file} (ENOENT`)
    t.notMatch(made.body.message, /Redis/, 'no Redis is configured, so none is blamed')
    const logged = pc
      .logLines()
      .map((l) => JSON.parse(l) as { code?: string; msg?: string })
      .find((l) => l.code === 'PC_ERR_STORE_WRITE')
    t.match(logged?.msg, file, 'the failed write is logged with its code')
    t.same((await adminCall<{ approvals: unknown[] }>(pc.adminUrl, 'GET', '/api/approvals')).body.approvals, [])
    t.equal((await curl([...proxy, url])).status, 403, 'the approval the API refused is not in force')
  },
)

t.test('portcullis approvals prints control characters in a reason or a name as U+FFFD', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const blocked = await curl([
    ...['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`],
    `http://origin.test:${origin.port}/private/a.txt`,
  ])
  const made = await adminCall<ApprovalAnswer>(pc.adminUrl, 'POST', '/api/approvals', {
    request_id: blocked.headers['x-portcullis-request-id'],
    reason: 'build\nFAKE-ID  ci  host  origin.test:1/  1h  root  ok\u001b]0;pwned\u0007',
    approved_by: 'eve\u001b[31m\u009b2J',
  })
  t.equal(made.status, 201)
  const listed = await runPortcullis(['approvals', '--admin', pc.adminUrl], {
    env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken },
  })
  t.equal(listed.code, 0, listed.stderr)
  t.notMatch(listed.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character but the line ends')
  const lines = listed.stdout.split('\n').filter(Boolean)
  t.equal(lines.length, 2, 'the header and one row: the reason did not split it')
  t.match(lines[1], `eve\ufffd[31m\ufffd2J`)
  t.match(lines[1], `build\ufffdFAKE-ID`)
})

t.test('approving the same request with the same scope again answers the approval in force', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const url = `http://origin.test:${origin.port}/private/a.txt`
  const requestId = (await curl([...proxy, url])).headers['x-portcullis-request-id'] as string
  const approve = (
    ttl: string,
    scope = 'exact',
  ): ReturnType<typeof adminCall<ApprovalAnswer & { already?: boolean; extended?: boolean }>> =>
    adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: requestId, scope, ttl, approved_by: 'alice' })
  const first = await approve('1h')
  t.equal(first.status, 201)
  const again = await approve('30m')
  t.match(
    again,
    { status: 200, body: { id: first.body.id, already: true, extended: false } },
    'the same one, not shortened',
  )
  t.equal(again.body.expires_at, first.body.expires_at)
  const longer = await approve('3h')
  t.match(longer, { status: 200, body: { id: first.body.id, already: true, extended: true } }, 'the same one, extended')
  t.ok(longer.body.expires_in_s > 3 * 3600 - 60, 'to the longer ttl')
  const audit = await pc.waitForRecord((r) => r.event === 'approval' && r.action === 'extend')
  t.match(audit, { approval_id: first.body.id, actor: 'alice', expires_at: longer.body.expires_at })
  const cli = await runPortcullis(['approve', requestId, '--ttl', '1h', '--admin', pc.adminUrl], {
    env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken },
  })
  t.equal(cli.code, 0, cli.stderr)
  t.match(cli.stdout, `already approved by ${first.body.id}, unchanged`, 'the CLI says it was there already')
  const host = await approve('1h', 'host')
  t.equal(host.status, 201, 'another scope is another approval')
  const listed = await adminCall<{ approvals: ApprovalAnswer[] }>(pc.adminUrl, 'GET', '/api/approvals')
  t.same(listed.body.approvals.map((a) => a.id).sort(), [first.body.id, host.body.id].sort())
  await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${host.body.id}`)
  t.ok(await until(async () => (await curl([...proxy, url])).status === 200, 1000), 'exact still opens it')
  await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${first.body.id}`)
  t.ok(await until(async () => (await curl([...proxy, url])).status === 403, 1000), 'one revocation closes it')
})

t.test('the same approval asked for several times at once is made once (a double click)', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const proxy = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`]
  const url = `http://origin.test:${origin.port}/private/b.txt`
  const requestId = (await curl([...proxy, url])).headers['x-portcullis-request-id'] as string
  const answers = await Promise.all(
    Array.from({ length: 5 }, () =>
      adminCall<ApprovalAnswer & { already?: boolean }>(pc.adminUrl, 'POST', '/api/approvals', {
        request_id: requestId,
        scope: 'exact',
        ttl: '1h',
      }),
    ),
  )
  t.same(answers.map((a) => a.status).sort(), [200, 200, 200, 200, 201], 'one made, four answered as already made')
  t.equal(new Set(answers.map((a) => a.body.id)).size, 1, 'all name the same approval')
  const listed = await adminCall<{ approvals: ApprovalAnswer[] }>(pc.adminUrl, 'GET', '/api/approvals')
  t.equal(listed.body.approvals.length, 1, 'one approval in force')
  await adminCall(pc.adminUrl, 'DELETE', `/api/approvals/${answers[0]!.body.id}`)
  t.ok(await until(async () => (await curl([...proxy, url])).status === 403, 1000), 'one revocation closes it')
})
