import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { basicAuth, curl, rawExchange } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'

t.test('agent identity through the real proxy', async (t) => {
  const origin = await startHttpOrigin(t)
  const tls = await startHttpsOrigin(t, ['origin.test'])
  // Config order matters for source matching: `fenced` (token + sources that exclude loopback) comes
  // first, `ci` is a token-only agent, `local` is matched by 127.0.0.1/32 with no credentials.
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port, tls.port], `  ca_file: ${JSON.stringify(tls.ca.certFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
agents:
  - id: fenced
    token: ${TOKEN_HASH}
    source_cidrs: [10.99.0.0/16]
    groups: [g]
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
  - id: local
    source_cidrs: [127.0.0.1/32]
    groups: [g]
`,
  )
  const url = (path: string): string => `http://origin.test:${origin.port}${path}`
  const base64Creds = Buffer.from(`ci:${TOKEN}`).toString('base64')

  t.test('an agent matched by source_cidrs needs no credentials', async (t) => {
    const r = await curl(['--proxy', pc.proxyUrl, url('/by-source')])
    t.equal(r.status, 200)
    t.match(r.body, /origin saw GET \/by-source/)
    t.equal(origin.seen.at(-1)?.url, '/by-source')
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/by-source')
    t.match(rec, { agent: 'local', decision: 'allow', reason: 'allowed', rule: 'g.allow[0]' })
  })

  t.test('a token agent whose source_cidrs exclude the client is refused even with the right token', async (t) => {
    const before = origin.seen.length
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `fenced:${TOKEN}`, url('/fenced')])
    t.equal(r.status, 407)
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
    t.equal(r.headers['proxy-authenticate'], 'Basic realm="portcullis"')
    t.equal(origin.seen.length, before, 'origin not reached')
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/fenced')
    t.match(rec, { decision: 'deny', reason: 'denied_auth_invalid', rule: null, would_deny: false })
  })

  t.test('a wrong token never falls back to source matching', async (t) => {
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', 'local:whatever', url('/wrong-for-source-agent')])
    t.equal(r.status, 407)
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
  })

  const MALFORMED: ReadonlyArray<readonly [string, string]> = [
    ['a non-Basic scheme', 'Bearer abcdef'],
    ['invalid base64', 'Basic !!!not-base64!!!'],
    ['base64 without a colon', `Basic ${Buffer.from('no-colon-here').toString('base64')}`],
    ['unpadded base64', `Basic ${base64Creds.replace(/=+$/, '')}x`],
  ]
  for (const [what, header] of MALFORMED) {
    t.test(`a malformed Proxy-Authorization (${what}) is 407 denied_auth_invalid`, async (t) => {
      const before = origin.seen.length
      const { response } = await rawExchange(
        pc.proxyPort,
        `GET ${url('/malformed')} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: ${header}\r\nConnection: close\r\n\r\n`,
      )
      t.match(response, /^HTTP\/1\.1 407 /)
      t.match(response, /x-portcullis-decision: denied_auth_invalid/i)
      t.equal(origin.seen.length, before, 'origin not reached')
    })
  }

  t.test('every request on a kept-alive connection is authenticated by its own header', async (t) => {
    // The proxy remembers the last answer per connection; a different header must be asked again.
    const req = (path: string, auth: string | null, last = false): string =>
      `GET ${url(path)} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n${auth === null ? '' : `Proxy-Authorization: ${auth}\r\n`}${last ? 'Connection: close\r\n' : ''}\r\n`
    const { response } = await rawExchange(
      pc.proxyPort,
      req('/ka-good', basicAuth('ci', TOKEN)) +
        req('/ka-wrong', basicAuth('ci', 'not-the-token')) +
        req('/ka-good-again', basicAuth('ci', TOKEN)) +
        req('/ka-none', null, true),
    )
    const statuses = [...response.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]))
    t.same(statuses, [200, 407, 200, 200], 'good, wrong, good again, then no credentials (source agent)')
    const agentOf = async (path: string): Promise<unknown> => {
      const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === path)
      return rec.event === 'decision' ? [rec.agent, rec.reason] : null
    }
    t.same(await agentOf('/ka-good'), ['ci', 'allowed'])
    t.same(await agentOf('/ka-wrong'), ['ci', 'denied_auth_invalid'])
    t.same(await agentOf('/ka-good-again'), ['ci', 'allowed'])
    t.same(await agentOf('/ka-none'), ['local', 'allowed'])
  })

  t.test('an unknown agent id is 407 denied_auth_invalid', async (t) => {
    const before = origin.seen.length
    const r = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ghost:${TOKEN}`, url('/ghost')])
    t.equal(r.status, 407)
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
    t.equal(origin.seen.length, before)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/ghost')
    t.match(rec, { decision: 'deny', reason: 'denied_auth_invalid' })
    t.not(rec.event === 'decision' ? rec.agent : null, 'ghost', 'an unknown id is not recorded as if it were an agent')
  })

  t.test('a wrong token and an unknown id get the same 407: agent ids cannot be enumerated', async (t) => {
    // Only the request id differs between the two answers.
    const sameBut = (body: string): string => body.replace(/[0-9A-HJKMNP-TV-Z]{26}/g, 'ID')
    for (const accept of ['*/*', 'application/json']) {
      const answer = (user: string) =>
        curl(['--proxy', pc.proxyUrl, '--proxy-user', `${user}:bad`, '-H', `accept: ${accept}`, url('/enumerate')])
      const [known, unknown] = await Promise.all([answer('ci'), answer('zzz')])
      t.equal(known.status, 407)
      t.notMatch(known.body, /\bci\b/, `${accept}: the body does not name the agent`)
      t.equal(sameBut(known.body), sameBut(unknown.body), `${accept}: the same body for both`)
    }
    const connect = async (user: string): Promise<string> =>
      sameBut(
        (
          await rawExchange(
            pc.proxyPort,
            `CONNECT origin.test:${tls.port} HTTP/1.1\r\nHost: origin.test:${tls.port}\r\nProxy-Authorization: ${basicAuth(user, 'bad')}\r\n\r\n`,
          )
        ).response.replace(/^date: .*\r\n/im, ''),
      )
    const [known, unknown] = await Promise.all([connect('ci'), connect('zzz')])
    t.match(known, /^HTTP\/1\.1 407 /)
    t.equal(known, unknown, 'CONNECT: the same answer for both')
    const rec = await pc.waitForRecord(
      (x) =>
        x.event === 'decision' && x.path === '/enumerate' && x.reason === 'denied_auth_invalid' && x.agent === 'ci',
    )
    t.ok(rec, 'the record still names a claimed agent that exists, for analysts')
  })

  t.test('the token is never forwarded to the origin nor written to the log', async (t) => {
    const ok = await curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, url('/with-token')])
    t.equal(ok.status, 200)
    const seen = origin.seen.find((s) => s.url === '/with-token')
    t.ok(seen, 'origin reached')
    t.notOk(seen?.headers['proxy-authorization'], 'no Proxy-Authorization upstream')
    t.notOk(JSON.stringify(seen?.headers).includes(TOKEN), 'no header carries the token')
    t.notOk(JSON.stringify(seen?.headers).includes(base64Creds), 'no header carries the encoded credentials')
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/with-token')
    t.match(rec, { agent: 'ci', decision: 'allow' })
    // Also after denials that carried it (wrong source, unknown agent) and a tunnel.
    await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `ci:${TOKEN}`,
      '--cacert',
      tls.ca.certFile,
      `https://origin.test:${tls.port}/tunnel-with-token`,
    ])
    await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === tls.port && x.agent === 'ci',
    )
    const lines = pc.logLines()
    t.ok(lines.length > 0, 'there are log lines to check')
    t.notOk(
      lines.some((l) => l.includes(TOKEN)),
      'no log line has the token',
    )
    t.notOk(
      lines.some((l) => l.includes(base64Creds)),
      'no log line has the encoded credentials',
    )
    t.notOk(JSON.stringify(pc.records()).includes(TOKEN), 'no record has the token')
  })

  t.test('a 407 on CONNECT makes curl fail cleanly with a message naming 407', async (t) => {
    const before = tls.seen.length
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      'ci:wrong-token',
      '--cacert',
      tls.ca.certFile,
      `https://origin.test:${tls.port}/connect-407`,
    ])
    t.not(r.exitCode, 0)
    t.equal(r.exitCode, 56, 'CURLE_RECV_ERROR: the CONNECT was refused, not a timeout (28)')
    t.match(r.stderr, /407/)
    t.equal(r.status, 407)
    t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
    t.equal(tls.seen.length, before, 'origin not reached')
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.reason === 'denied_auth_invalid',
    )
    t.match(rec, { decision: 'deny', host: 'origin.test', port: tls.port, rule: null })
  })

  t.test('a 407 on CONNECT names a malformed header too', async (t) => {
    const { response } = await rawExchange(
      pc.proxyPort,
      `CONNECT origin.test:${tls.port} HTTP/1.1\r\nHost: origin.test:${tls.port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN).slice(0, -2)}\r\n\r\n`,
    )
    t.match(response, /^HTTP\/1\.1 407 /)
    t.match(response, /x-portcullis-decision: denied_auth_invalid/i)
  })
})
