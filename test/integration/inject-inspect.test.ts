import { join } from 'node:path'
import { deflateSync, gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { until } from '../helpers/poll.js'
import { pinnedUpstreamYaml, TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

const SECRET = 'npm-secret-only-the-proxy-knows'
// What String.replace reads as patterns in a replacement string: $$, $&, $` and $'.
const DOLLAR_SECRET = "tok$$9$&x$`y$'z"
// Shapes of real credentials (documented example values), to be caught on the way out.
const AWS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'
const PEM_HEADER = '-----BEGIN RSA PRIVATE KEY-----'

t.test('inject_headers adds the secret upstream over TLS; the sandbox never has it', async (t) => {
  const tls = await startHttpsOrigin(t, ['origin.test', 'other.test'])
  const dollar = await startHttpsOrigin(t, ['paths.test'], undefined, tls.ca)
  const plain = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([tls.port, plain.port, dollar.port], `  ca_file: ${JSON.stringify(tls.ca.certFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
        inject_headers: { Authorization: { env: PC_TEST_NPM_TOKEN, format: "Bearer {}" } }
      - host: other.test
        inject_headers: { X-Api-Key: { env: PC_TEST_UNSET } }
      - host: paths.test
        inject_headers: { Authorization: { env: PC_TEST_DOLLAR, format: "Bearer {} end" } }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
    {},
    { env: { PC_TEST_NPM_TOKEN: SECRET, PC_TEST_DOLLAR: DOLLAR_SECRET } },
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]

  t.test('the header reaches the origin, replacing one the client sent', async (t) => {
    const r = await curl([
      ...via,
      '-H',
      'Authorization: Bearer from-the-sandbox',
      `https://origin.test:${tls.port}/pkg`,
    ])
    t.equal(r.status, 200, r.stderr)
    t.equal(tls.seen.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    t.notMatch(r.body, SECRET, 'not echoed to the client by the proxy')
    t.notOk(
      pc.logLines().some((l) => l.includes(SECRET)),
      'never logged',
    )
  })

  t.test('a secret holding $ patterns goes upstream as it is', async (t) => {
    const r = await curl([...via, `https://paths.test:${dollar.port}/pkg`])
    t.equal(r.status, 200, r.body)
    t.equal(dollar.seen.at(-1)?.headers.authorization, `Bearer ${DOLLAR_SECRET} end`)
  })

  t.test('plain http gets no secret: it would cross the network in clear', async (t) => {
    const r = await curl([...via, `http://origin.test:${plain.port}/pkg`])
    t.equal(r.status, 200)
    t.notOk(plain.seen.at(-1)?.headers.authorization)
  })

  t.test('TRACE gets no secret: an origin would echo it back', async (t) => {
    await curl([...via, '-X', 'TRACE', `https://origin.test:${tls.port}/echo`])
    const seen = tls.seen.at(-1)
    t.equal(seen?.method, 'TRACE')
    t.notOk(seen?.headers.authorization)
  })

  t.test('an unset variable fails closed', async (t) => {
    const before = tls.seen.length
    const r = await curl([...via, `https://other.test:${tls.port}/x`])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_internal_error')
    t.equal(tls.seen.length, before, 'nothing was sent without the credential')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.host === 'other.test' && x.path === '/x',
    )
    t.match(rec, { reason: 'denied_internal_error', rule: 'g.allow[1]', detail: 'inject_secret_missing' })
    t.ok(
      pc.logLines().some((l) => l.includes('PC_INJECT_SECRET_MISSING') && l.includes('PC_TEST_UNSET')),
      'the operator is told which variable',
    )
    t.match(r.body, /environment variable PC_TEST_UNSET, which is not set/, 'so is the agent')
    const health = (await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { warnings: string[] }
    t.match(health.warnings, [/g\.allow\[1\]: environment variable PC_TEST_UNSET/], '/healthz names it')
    t.ok(
      pc.logLines().some((l) => l.includes('PC_INJECT_SECRET_MISSING') && l.includes('"rule":"g.allow[1]"')),
      'said at start, before any request',
    )
  })
})

t.test('inspect_body refuses requests that carry credentials out, before a byte reaches upstream', async (t) => {
  const tls = await startHttpsOrigin(t, ['origin.test'])
  const plain = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([tls.port, plain.port], `  ca_file: ${JSON.stringify(tls.ca.certFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
        inspect_body: true
      - { host: other.test, inspect_body: true }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
  - { id: aud, token: ${TOKEN_HASH}, groups: [g], mode: audit }
`,
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const url = `https://origin.test:${tls.port}/upload`
  const refused = async (t: Test, args: string[], detector: string, target = url): Promise<void> => {
    const before = tls.seen.length + plain.seen.length
    const r = await curl([...via, ...args, target])
    t.equal(r.status, 403, r.stderr)
    t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
    t.match(r.body, /portcullis blocked POST|portcullis blocked GET/)
    t.equal(tls.seen.length + plain.seen.length, before, 'the origin received nothing')
    const id = String(r.headers['x-portcullis-request-id'])
    const rec = await pc.waitForRecord<DecisionRecord>((x) => x.event === 'decision' && x.id === id)
    t.match(rec, { decision: 'deny', reason: 'denied_secret_detected', rule: 'g.allow[0]', detail: detector })
    t.notOk(
      pc.logLines().some((l) => l.includes(AWS_KEY_ID)),
      'the secret is not logged',
    )
  }

  t.test('a clean body passes, intact', async (t) => {
    const r = await curl([...via, '--data-binary', 'name=widgets&version=1.2.3', url])
    t.equal(r.status, 200, r.stderr)
    t.equal(tls.seen.at(-1)?.body, 'name=widgets&version=1.2.3')
  })
  t.test('a cloud key in the body', (t) =>
    refused(t, ['--data-binary', `aws_access_key_id=${AWS_KEY_ID}`], 'aws_access_key_id'),
  )
  t.test('a private key in a form body, percent-encoded', (t) =>
    refused(t, ['--data-urlencode', `k=${PEM_HEADER}\nMIIEowIBAAKCAQEA`], 'private_key'),
  )
  t.test('a gzip-encoded body', async (t) => {
    const dir = t.testdir({ 'body.gz': gzipSync(`{"key": "${PEM_HEADER}"}`) })
    await refused(t, ['-H', 'Content-Encoding: gzip', '--data-binary', `@${join(dir, 'body.gz')}`], 'private_key')
  })
  t.test('a token in a header', (t) =>
    refused(t, ['-H', `X-Debug: ghp_${'a1B2'.repeat(9)}`, '--data-binary', 'x'], 'github_token'),
  )
  t.test('a key in the query', (t) => refused(t, ['-X', 'POST'], 'aws_access_key_id', `${url}?k=${AWS_KEY_ID}`))
  t.test('over plain http too', (t) =>
    refused(
      t,
      ['--data-binary', `AWS_KEY=${AWS_KEY_ID}`],
      'aws_access_key_id',
      `http://origin.test:${plain.port}/upload`,
    ),
  )
  t.test('bytes after the end of a deflate stream', async (t) => {
    const dir = t.testdir({ 'body.bin': Buffer.concat([deflateSync('clean'), Buffer.from(`\n{"k":"${AWS_KEY_ID}"}`)]) })
    await refused(
      t,
      ['-H', 'Content-Encoding: deflate', '--data-binary', `@${join(dir, 'body.bin')}`],
      'aws_access_key_id',
    )
  })
  t.test('JSON string escapes', (t) =>
    refused(t, ['--data-binary', '{"k":"\\u0041KIAIOSFODNN7EXAMPLE"}'], 'aws_access_key_id'),
  )
  t.test('a percent-encoded cookie', (t) =>
    refused(t, ['-H', 'Cookie: t=%41KIAIOSFODNN7EXAMPLE', '--data-binary', 'x'], 'aws_access_key_id'),
  )
  t.test('a key glued to word characters', (t) =>
    refused(t, ['--data-binary', `key_${AWS_KEY_ID}_end`], 'aws_access_key_id'),
  )
  t.test('a key in the path is refused and redacted from the record', async (t) => {
    const r = await curl([...via, '-X', 'POST', `https://origin.test:${tls.port}/leak/${AWS_KEY_ID}`])
    t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.id === r.headers['x-portcullis-request-id'],
    )
    t.equal(rec.path, '/leak/<redacted:aws_access_key_id>')
    t.notOk(
      pc.logLines().some((l) => l.includes(AWS_KEY_ID)),
      'nor in any log line',
    )
  })
  t.test('a body too large to inspect whole fails closed', async (t) => {
    const dir = t.testdir({ 'big.bin': Buffer.alloc(8 * 1024 * 1024 + 1, 0x61) })
    const before = tls.seen.length
    const r = await curl([...via, '--data-binary', `@${join(dir, 'big.bin')}`, url])
    t.equal(r.status, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
    t.equal(tls.seen.length, before)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => x.event === 'decision' && x.id === String(r.headers['x-portcullis-request-id']),
    )
    t.match(rec, { reason: 'denied_secret_detected', detail: 'uninspectable' })
  })
  t.test('audit mode: a body too large to inspect goes upstream whole, recorded would_deny', async (t) => {
    const big = Buffer.alloc(1100 * 1024, 0x61)
    big.write('end-of-body', big.length - 11)
    const dir = t.testdir({ 'big.bin': big })
    const audit = ['--proxy', pc.proxyUrl, '--proxy-user', `aud:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
    for (const [how, extra, target] of [
      ['with a length, intercepted', [], url],
      ['chunked, intercepted', ['-H', 'Transfer-Encoding: chunked'], url],
      ['with a length, plain', [], `http://origin.test:${plain.port}/upload`],
    ] as const) {
      const seen = target === url ? tls.seen : plain.seen
      const before = seen.length
      const r = await curl([...audit, ...extra, '--data-binary', `@${join(dir, 'big.bin')}`, target], 15_000)
      t.equal(r.status, 200, `${how}: ${r.stderr}`)
      t.equal(seen.length, before + 1, `${how}: the origin got it`)
      t.equal(seen.at(-1)?.body.length, big.length, `${how}: whole`)
      t.ok(seen.at(-1)?.body.endsWith('end-of-body'), `${how}: in order`)
    }
    // Kept for audit, then not sent after all (the upstream's certificate does not name other.test):
    // the client still gets the answer, not a reset or a wait.
    const failed = await curl(
      [...audit, '--data-binary', `@${join(dir, 'big.bin')}`, `https://other.test:${tls.port}/upload`],
      15_000,
    )
    t.equal(failed.status, 502, failed.stderr)
    t.equal(failed.headers['x-portcullis-decision'], 'upstream_error')
    const posts = (): DecisionRecord[] =>
      pc.decisions().filter((x) => x.agent === 'aud' && x.method === 'POST' && x.host === 'origin.test')
    t.ok(await until(async () => posts().length === 3), 'each recorded')
    for (const rec of posts())
      t.match(rec, { decision: 'deny', reason: 'denied_secret_detected', detail: 'uninspectable', would_deny: true })
  })
  t.test('a chunked body past the cap gets its 403 too, not a dropped connection', async (t) => {
    // No length to refuse it by up front: the proxy reads up to the cap, then answers on the same connection.
    const dir = t.testdir({ 'big.bin': Buffer.alloc(8 * 1024 * 1024, 0x61) })
    const before = tls.seen.length
    for (let i = 0; i < 3; i++) {
      const r = await curl([
        ...via,
        '-H',
        'Transfer-Encoding: chunked',
        '--data-binary',
        `@${join(dir, 'big.bin')}`,
        url,
      ])
      t.equal(r.status, 403, `upload ${i + 1}`)
      t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
    }
    t.equal(tls.seen.length, before, 'nothing reached the origin')
  })
})

t.test('an upstream that echoes the request never hands the injected secret to the sandbox', async (t) => {
  const echo = await startHttpsOrigin(t, ['origin.test'], (req, res) => {
    const body = JSON.stringify({ headers: req.headers, note: `you sent ${String(req.headers.authorization)}` })
    if (req.url === '/headers-gzip') {
      // Compressed though identity was asked for: the echo is out of the masker's sight.
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      return void res.end(gzipSync(body))
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-echo-authorization': String(req.headers.authorization),
      'content-length': Buffer.byteLength(body),
    })
    res.end(body)
  })
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([echo.port], `  ca_file: ${JSON.stringify(echo.ca.certFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
        inject_headers: { Authorization: { env: PC_TEST_NPM_TOKEN, format: "Bearer {}" } }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
    {},
    { env: { PC_TEST_NPM_TOKEN: SECRET } },
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const r = await curl([...via, '--compressed', `https://origin.test:${echo.port}/headers`])
  t.equal(r.status, 200, r.stderr)
  t.equal(echo.seen.at(-1)?.headers.authorization, `Bearer ${SECRET}`, 'the origin got the credential')
  t.equal(echo.seen.at(-1)?.headers['accept-encoding'], 'identity', 'and was asked for an uncompressed answer')
  t.notMatch(r.body, SECRET, 'the body echoed back is masked')
  t.match(r.body, `Bearer ${'*'.repeat(SECRET.length)}`)
  t.equal(r.headers['x-echo-authorization'], `Bearer ${'*'.repeat(SECRET.length)}`, 'so is a header echoing it')
  t.doesNotThrow(() => JSON.parse(r.body), 'the body is still whole (same length)')
  // A Range read of the echo would bring the credential out in pieces too short to mask: not asked for.
  const ranged = await curl([...via, '-H', 'Range: bytes=10-20', `https://origin.test:${echo.port}/headers`])
  t.equal(ranged.status, 200)
  t.equal(echo.seen.at(-1)?.headers.range, undefined, 'the Range header was not forwarded')
  const legacy = await curl([...via, '-H', 'Request-Range: bytes=10-20', `https://origin.test:${echo.port}/headers`])
  t.equal(legacy.status, 200)
  t.equal(echo.seen.at(-1)?.headers['request-range'], undefined, 'nor Request-Range, which Apache reads as Range')
  // No body, nothing to mask: a compressed HEAD answer passes.
  const head = await curl([...via, '-I', `https://origin.test:${echo.port}/headers-gzip`])
  t.equal(head.status, 200, 'HEAD of a compressed answer')
  const gz = await curl([...via, '--compressed', `https://origin.test:${echo.port}/headers-gzip`])
  t.equal(gz.status, 502, 'a compressed answer, which the masker cannot read, is refused')
  t.equal(gz.headers['x-portcullis-decision'], 'upstream_error')
  t.match(gz.body, /compressed an answer/)
  t.notMatch(gz.body, SECRET)
  const rec = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.path === '/headers-gzip' && x.reason === 'upstream_error',
  )
  t.equal(rec.detail, 'encoded_answer')
})

t.test('a git token_env credential (HTTP Basic) echoed back is masked, base64 and all', async (t) => {
  const echo = await startHttpsOrigin(t, ['github.com'], (req, res) => {
    const body = `you sent ${String(req.headers.authorization)}\n`
    res.writeHead(200, {
      'content-type': 'text/plain',
      'x-echo-authorization': String(req.headers.authorization),
      'content-length': Buffer.byteLength(body),
    })
    res.end(body)
  })
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [echo.port], hosts: ['github.com'], caFile: echo.ca.certFile })}
groups:
  g:
    allow:
      - github: { repos: [acme/widgets], access: read, token_env: PC_TEST_NPM_TOKEN }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
    {},
    { env: { PC_TEST_NPM_TOKEN: SECRET } },
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const r = await curl([...via, `https://github.com:${echo.port}/acme/widgets.git/info/refs?service=git-upload-pack`])
  t.equal(r.status, 200, r.stderr)
  const sent = `Basic ${Buffer.from(`x-access-token:${SECRET}`).toString('base64')}`
  t.equal(echo.seen.at(-1)?.headers.authorization, sent, 'the origin got the credential')
  t.notMatch(r.body, sent.slice(6), 'the base64 credential echoed in the body is masked')
  t.notMatch(String(r.headers['x-echo-authorization']), sent.slice(6), 'and in a header')
  t.match(String(r.headers['x-echo-authorization']), /^Basic \*+$/)
})

t.test("a broader rule in another group does not switch off a rule's inspection or injection", async (t) => {
  const tls = await startHttpsOrigin(t, ['origin.test'])
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([tls.port], `  ca_file: ${JSON.stringify(tls.ca.certFile)}`)}
groups:
  broad:
    allow:
      - host: "*.test"
  careful:
    allow:
      - host: origin.test
        inspect_body: true
        inject_headers: { X-Api-Key: { env: PC_TEST_NPM_TOKEN } }
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [broad, careful] }
`,
    {},
    { env: { PC_TEST_NPM_TOKEN: SECRET } },
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const clean = await curl([...via, `https://origin.test:${tls.port}/ok`])
  t.equal(clean.status, 200, clean.stderr)
  t.equal(tls.seen.at(-1)?.headers['x-api-key'], SECRET, "the careful rule's header is injected")
  const before = tls.seen.length
  const r = await curl([...via, '-X', 'POST', '--data', `key=${AWS_KEY_ID}`, `https://origin.test:${tls.port}/up`])
  t.equal(r.status, 403)
  t.equal(r.headers['x-portcullis-decision'], 'denied_secret_detected')
  t.equal(tls.seen.length, before, 'nothing reached the origin')
  const rec = await pc.waitForRecord<DecisionRecord>(
    (x) => x.event === 'decision' && x.id === String(r.headers['x-portcullis-request-id']),
  )
  t.match(rec, { rule: 'careful.allow[0]' }, 'the refusal names the rule that asked for inspection')
})
