import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import forge from 'node-forge'
import t, { type Test } from 'tap'
import { createCaMaterial } from '../../src/tls/ca.js'
import { curl } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH } from '../helpers/config.js'
import { startHttpsOriginWith, type Origin } from '../helpers/origins.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/**
 * SPEC §2: the upstream leg verifies the real server's certificate, and no more loosely than the
 * agents' own clients would: an origin that curl (Debian's OpenSSL, security level 2) or a browser
 * refuses is refused through the proxy too, as 502 upstream_error `tls_verify`.
 */

interface LeafShape {
  /** Subject CN. */
  readonly cn: string
  /** subjectAltName DNS names; none: no subjectAltName at all. */
  readonly dns?: readonly string[]
  readonly bits?: number
  readonly digest?: 'sha1' | 'sha256'
}

/** A CA in a temporary file that signs leaves of any shape (test-ca.ts makes only well-formed ones). */
function createShapingCa(t: Test): { certFile: string; issue(shape: LeafShape): { key: string; cert: string } } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-shaping-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { certPem, keyPem } = createCaMaterial('Portcullis test shaping CA')
  const certFile = join(dir, 'ca.pem')
  writeFileSync(certFile, certPem)
  const caCert = forge.pki.certificateFromPem(certPem)
  const caKey = forge.pki.privateKeyFromPem(
    forge.pki.privateKeyToPem(forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey),
  )
  return {
    certFile,
    issue(shape) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: shape.bits ?? 2048 })
      const cert = forge.pki.createCertificate()
      cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
      cert.serialNumber = `01${Math.floor(Math.random() * 1e12).toString(16)}`
      cert.validity.notBefore = new Date(Date.now() - 3600_000)
      cert.validity.notAfter = new Date(Date.now() + 30 * 24 * 3600_000)
      cert.setSubject([{ name: 'commonName', value: shape.cn }])
      cert.setIssuer(caCert.subject.attributes)
      cert.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        ...(shape.dns === undefined
          ? []
          : [{ name: 'subjectAltName', altNames: shape.dns.map((value) => ({ type: 2, value })) }]),
      ])
      cert.sign(caKey, shape.digest === 'sha1' ? forge.md.sha1.create() : forge.md.sha256.create())
      return {
        key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        cert: forge.pki.certificateToPem(cert),
      }
    },
  }
}

t.test('upstream certificates are held to what modern clients accept', async (t) => {
  const ca = createShapingCa(t)
  const shapes: Record<string, LeafShape> = {
    good: { cn: 'good.test', dns: ['good.test'] },
    cnonly: { cn: 'cnonly.test' },
    weak: { cn: 'weak.test', dns: ['weak.test'], bits: 1024 },
    sha1: { cn: 'sha1.test', dns: ['sha1.test'], digest: 'sha1' },
  }
  const origins: Record<string, Origin> = {}
  // The origin's own checks off: it serves any key size or digest.
  for (const [name, shape] of Object.entries(shapes))
    origins[name] = await startHttpsOriginWith(t, { ...ca.issue(shape), ciphers: 'DEFAULT@SECLEVEL=0' }, (_req, res) =>
      res.end('origin answered\n'),
    )
  const ports = Object.values(origins).map((o) => o.port)
  const pc = await startPortcullis(
    t,
    `upstream:
  ports: [${ports.join(', ')}]
  resolve: { ${Object.keys(shapes)
    .map((n) => `${n}.test: 127.0.0.1`)
    .join(', ')} }
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(ca.certFile)}
groups:
  g:
    allow:
      - host: "*.test"
        paths: ["/**"]
agents:
  - { id: ci, token: ${TOKEN_HASH}, groups: [g] }
`,
  )
  const via = ['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, '--cacert', join(pc.dir, 'ca.pem')]
  const get = (name: string) => curl([...via, `https://${name}.test:${origins[name]?.port}/x`])

  t.test('an RSA-2048, SHA-256 origin with its name in subjectAltName is reached', async (t) => {
    const r = await get('good')
    t.equal(r.status, 200, r.stderr)
    t.equal(r.body, 'origin answered\n')
  })

  for (const [name, what, verifyCode, verifyError] of [
    ['cnonly', 'a name only in the subject CN', 'ERR_TLS_CERT_ALTNAME_INVALID', /cnonly\.test.*subjectAltName/],
    ['weak', 'an RSA-1024 key', 'UNSPECIFIED', /key too weak/],
    ['sha1', 'a SHA-1 signature', 'UNSPECIFIED', /digest algorithm too weak/],
  ] as const) {
    t.test(`${what}: 502 upstream_error, tls_verify (not a reset)`, async (t) => {
      const r = await get(name)
      t.equal(r.status, 502, r.stderr)
      t.equal(r.headers['x-portcullis-decision'], 'upstream_error')
      t.match(r.body, /TLS certificate could not be verified/)
      t.equal(origins[name]?.seen.length, 0, 'nothing was sent over the connection')
      const rec = await pc.waitForRecord(
        (x) => x.event === 'decision' && x.reason === 'upstream_error' && x.port === origins[name]?.port,
      )
      t.match(rec, { detail: 'tls_verify' })
      // The operator's log says why, once; the agent's answer does not.
      const lines = pc
        .logLines()
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.code === 'PC_UPSTREAM_TLS_VERIFY' && l.port === origins[name]?.port)
      t.equal(lines.length, 1, 'one PC_UPSTREAM_TLS_VERIFY line')
      t.match(lines[0], { level: 'warn', host: `${name}.test`, verify_code: verifyCode, verify_error: verifyError })
      t.notMatch(r.body, verifyError)
    })
  }
})
