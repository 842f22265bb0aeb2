import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { run } from '../helpers/spawn.js'

/**
 * Interception costs the proxy a handshake and, per new name, a certificate: an intercepted CONNECT
 * counts against the agent's request budget, and under a `*.domain` rule one leaf serves every
 * sibling name, so distinct subdomains cannot make the proxy mint without bound.
 */
t.test('intercepted CONNECTs are budgeted and share wildcard leaves', async (t) => {
  const names = ['a.w.test', 'b.w.test', 'c.w.test', 'd.w.test', 'my_host.w.test']
  const origin = await startHttpsOrigin(t, ['*.w.test'])
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${origin.port}]
  resolve: { ${names.map((n) => `${n}: 127.0.0.1`).join(', ')} }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(origin.ca.certFile)}
groups:
  g:
    allow:
      - host: "*.w.test"
        methods: [GET]
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g], limits: { requests_per_minute: 8 } }
  - { id: py, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const ca = readFileSync(join(pc.dir, 'ca.pem'))
  const leafFor = async (t: Test, name: string): Promise<PeerCertificate> => {
    const { socket, head } = await openTunnel(pc.proxyPort, `${name}:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 200 /, `CONNECT ${name}`)
    const tls = tlsConnect({ socket, servername: name, ca })
    await once(tls, 'secureConnect')
    const cert = tls.getPeerCertificate()
    tls.destroy()
    return cert
  }

  t.test('sibling names under a wildcard rule get one leaf, valid for each', async (t) => {
    const a = await leafFor(t, 'a.w.test')
    const b = await leafFor(t, 'b.w.test')
    t.equal(a.subjectaltname, 'DNS:*.w.test')
    t.equal(a.fingerprint256, b.fingerprint256, 'the same certificate: minted once')
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `ci:${TOKEN}`,
      '--cacert',
      join(pc.dir, 'ca.pem'),
      `https://c.w.test:${origin.port}/x`,
    ])
    t.equal(r.status, 200, `curl verifies it for c.w.test: ${r.status} ${r.stderr} ${r.body}`)
  })

  t.test('a name no wildcard can stand for in OpenSSL (an underscore) gets its own leaf', async (t) => {
    // Python's ssl (OpenSSL's X509_check_host) lets `*` match letters, digits and hyphens only.
    const script = [
      'import ssl, sys, urllib.request',
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(join(pc.dir, 'ca.pem'))})`,
      `proxy = urllib.request.ProxyHandler({"https": "http://py:${TOKEN}@127.0.0.1:${pc.proxyPort}"})`,
      'opener = urllib.request.build_opener(proxy, urllib.request.HTTPSHandler(context=ctx))',
      `print(opener.open("https://my_host.w.test:${origin.port}/x", timeout=10).status)`,
    ].join('\n')
    const r = await run('python3', ['-c', script], { env: { PATH: process.env.PATH }, timeoutMs: 20_000 })
    t.equal(r.stdout.trim(), '200', r.stderr)
  })

  t.test('each intercepted CONNECT spends a request of the budget', async (t) => {
    // Spent so far: 3 CONNECTs and 1 inner GET of 8. Four more CONNECTs fit; the fifth is refused.
    for (let i = 0; i < 4; i++) await leafFor(t, 'd.w.test')
    const { head } = await openTunnel(pc.proxyPort, `d.w.test:${origin.port}`)
    t.match(head, /^HTTP\/1\.1 429 /)
    t.match(head, /x-portcullis-decision: denied_rate_limited/i)
  })
})
