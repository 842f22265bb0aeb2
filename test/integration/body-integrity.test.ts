import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request, type IncomingMessage, type ServerResponse } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { createTestCa } from '../helpers/test-ca.js'
import { basicAuth } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'

/**
 * Upstream answers are read into one buffer per connection, reused read after read, and what is
 * written to the client is a copy (in a ring per answer, given back as writes complete). A copy
 * missing or given back too early shows as bytes of a later read in place of earlier ones: only a
 * body whose bytes differ everywhere can show it, read by a client that keeps pausing (so writes
 * wait, the ring fills and wraps), from an origin writing pieces that straddle reads.
 */
const BODY = randomBytes(24 * 2 ** 20)
const BODY_SHA = createHash('sha256').update(BODY).digest('hex')
const PIECES = [1, 7919, 65_537, 300_001, 4096, 16_384, 123]

function serveBody(req: IncomingMessage, res: ServerResponse): void {
  const chunked = req.url?.includes('chunked') === true
  res.writeHead(200, chunked ? {} : { 'content-length': String(BODY.length) })
  let at = 0
  let i = 0
  const more = (): void => {
    while (at < BODY.length) {
      const n = Math.min(PIECES[i++ % PIECES.length] as number, BODY.length - at)
      const ok = res.write(BODY.subarray(at, at + n))
      at += n
      if (!ok) return void res.once('drain', more)
    }
    res.end()
  }
  more()
}

/** Read `res` whole, pausing 20 ms after every MiB; its length and SHA-256. */
async function readPausing(res: IncomingMessage): Promise<{ bytes: number; sha: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  let sincePause = 0
  res.on('data', (c: Buffer) => {
    hash.update(c)
    bytes += c.length
    sincePause += c.length
    if (sincePause >= 2 ** 20) {
      sincePause = 0
      res.pause()
      setTimeout(() => res.resume(), 20)
    }
  })
  await once(res, 'end')
  return { bytes, sha: hash.digest('hex') }
}

t.test('a large body arrives byte for byte through a client that keeps pausing', async (t) => {
  const upstreamCa = createTestCa(t)
  const plain = await startHttpOrigin(t, (req, res) => serveBody(req, res))
  const tls = await startHttpsOrigin(t, ['paths.test'], (req, res) => serveBody(req, res), upstreamCa)
  const injected = await startHttpsOrigin(t, ['other.test'], (req, res) => serveBody(req, res), upstreamCa)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([plain.port, tls.port, injected.port], `  ca_file: ${JSON.stringify(upstreamCa.certFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
      - host: paths.test
        paths: ["/**"]
      - host: other.test
        inject_headers: { X-Api-Key: { env: PC_TEST_KEY } }
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
    {},
    { env: { PC_TEST_KEY: 'an-injected-key-0123456789' } },
  )
  const proxyCa = readFileSync(join(pc.dir, 'ca.pem'), 'utf8')

  for (const framing of ['length', 'chunked'] as const) {
    t.test(`plain HTTP, ${framing} answer`, async (t) => {
      const url = `http://origin.test:${plain.port}/data?${framing}`
      const req = request({
        host: '127.0.0.1',
        port: pc.proxyPort,
        path: url,
        agent: false,
        headers: { host: `origin.test:${plain.port}`, 'proxy-authorization': basicAuth('ci', TOKEN) },
      })
      req.end()
      const [res] = (await once(req, 'response')) as [IncomingMessage]
      t.equal(res.statusCode, 200)
      const got = await readPausing(res)
      t.equal(got.bytes, BODY.length, 'every byte')
      t.equal(got.sha, BODY_SHA, 'the same bytes, in order')
    })

    // other.test has a credential injected: its answers are masked on the way (the masker holds a tail).
    for (const host of ['paths.test', 'other.test'])
      t.test(
        `intercepted HTTPS${host === 'other.test' ? ', injected credential' : ''}, ${framing} answer`,
        async (t) => {
          const port = host === 'other.test' ? injected.port : tls.port
          const authority = `${host}:${port}`
          const { socket } = await openTunnel(pc.proxyPort, authority)
          const secure = tlsConnect({ socket, servername: host, ca: proxyCa })
          await once(secure, 'secureConnect')
          const req = request({
            host,
            port,
            path: `/data?${framing}`,
            // No agent: the request goes on this connection (through the tunnel), not one of an agent's.
            createConnection: () => secure,
          })
          req.end()
          const [res] = (await once(req, 'response')) as [IncomingMessage]
          t.equal(res.statusCode, 200)
          const got = await readPausing(res)
          secure.destroy()
          t.equal(got.bytes, BODY.length, 'every byte')
          t.equal(got.sha, BODY_SHA, 'the same bytes, in order')
        },
      )
  }
})

t.test('a large registry document is read whole before the package gate rewrites it', async (t) => {
  // Read by the gate in many reads (fetchWhole): each one's bytes must be kept, not a view of the next.
  const versions = Array.from({ length: 400 }, (_, i) => `1.0.${i}`)
  const old = '2020-01-01T00:00:00.000Z'
  const noteOf = (v: string): string => createHash('sha256').update(v).digest('hex').repeat(4)
  const ca = createTestCa(t)
  let port = 0
  const registry = await startHttpsOrigin(
    t,
    ['registry.npmjs.org'],
    (_req, res) => {
      const base = `https://registry.npmjs.org:${port}/big-pkg/-`
      const doc = {
        name: 'big-pkg',
        'dist-tags': { latest: versions.at(-1) },
        versions: Object.fromEntries(
          versions.map((v) => [
            v,
            { name: 'big-pkg', version: v, description: noteOf(v), dist: { tarball: `${base}/big-pkg-${v}.tgz` } },
          ]),
        ),
        time: { created: old, modified: old, ...Object.fromEntries(versions.map((v) => [v, old])) },
      }
      const body = Buffer.from(JSON.stringify(doc))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
      // In pieces, so the proxy reads it in many reads.
      for (let at = 0; at < body.length; at += 7919) res.write(body.subarray(at, at + 7919))
      res.end()
    },
    ca,
  )
  port = registry.port
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${port}]
  resolve: { registry.npmjs.org: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(ca.certFile)}
groups:
  g:
    allow:
      - preset: npm
        packages:
          min_age: 72h
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`,
  )
  const proxyCa = readFileSync(join(pc.dir, 'ca.pem'), 'utf8')
  const { socket } = await openTunnel(pc.proxyPort, `registry.npmjs.org:${port}`)
  const secure = tlsConnect({ socket, servername: 'registry.npmjs.org', ca: proxyCa })
  await once(secure, 'secureConnect')
  const req = request({ host: 'registry.npmjs.org', port, path: '/big-pkg', createConnection: () => secure })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  secure.destroy()
  t.equal(res.statusCode, 200, Buffer.concat(chunks).toString('utf8').slice(0, 300))
  const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    versions: Record<string, { description: string }>
  }
  t.equal(Object.keys(doc.versions).length, versions.length, 'every version, none withheld (all are old)')
  t.ok(
    versions.every((v) => doc.versions[v]?.description === noteOf(v)),
    'each version as the registry sent it',
  )
})
