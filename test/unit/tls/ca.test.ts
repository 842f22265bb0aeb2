import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto'
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import forge from 'node-forge'
import t from 'tap'
import { createCaMaterial, ensureCa, loadCa, type CaWarning } from '../../../src/tls/ca.js'
import { mintLeaf } from '../../../src/tls/leaf-certs.js'
import { createTestCa } from '../../helpers/test-ca.js'

t.test('a new CA has a 0600 key and the CA extensions', async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  t.equal(await ensureCa(cert, key), true)
  t.equal(statSync(key).mode & 0o777, 0o600)
  const ca = await loadCa(cert, key)
  t.match(ca.cert.getExtension('basicConstraints'), { cA: true })
  t.match(ca.cert.getExtension('keyUsage'), { keyCertSign: true, cRLSign: true })
  t.equal(await ensureCa(cert, key), false, 'an existing CA is kept')
})

t.test('instances starting at once on one directory end up with one CA', async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  const created = await Promise.all([1, 2, 3, 4].map(() => ensureCa(cert, key)))
  t.equal(created.filter(Boolean).length, 1, 'exactly one created it')
  const ca = await loadCa(cert, key)
  t.equal(readFileSync(cert, 'utf8'), ca.certPem)
  t.ok(ca.keyPem.includes('PRIVATE KEY'), 'and the key on disk is its key (loadCa checks the pair)')
})

t.test('half a CA is an error that says what to do', async (t) => {
  const dir = t.testdir({ 'ca.pem': 'x' })
  await t.rejects(ensureCa(join(dir, 'ca.pem'), join(dir, 'ca-key.pem')), {
    code: 'PC_ERR_CA_UNREADABLE',
    message: /delete both/,
  })
})

t.test("a key that is not the certificate's is refused", async (t) => {
  const dir = t.testdir({ a: {}, b: {} })
  const [a, b] = [join(dir, 'a'), join(dir, 'b')]
  await ensureCa(join(a, 'ca.pem'), join(a, 'ca-key.pem'))
  await ensureCa(join(b, 'ca.pem'), join(b, 'ca-key.pem'))
  await t.rejects(loadCa(join(a, 'ca.pem'), join(b, 'ca-key.pem')), { code: 'PC_ERR_CA_UNREADABLE' })
})

t.test('a CA directory that cannot be used is PC_ERR_CA_UNREADABLE naming the path', async (t) => {
  // The "directory" is a file, so mkdir fails (as it would on a read-only mount), for root too.
  const dir = t.testdir({ certs: 'not a directory' })
  const key = join(dir, 'certs', 'ca-key.pem')
  await t.rejects(ensureCa(join(dir, 'certs', 'ca.pem'), key), {
    code: 'PC_ERR_CA_UNREADABLE',
    message: /certs.*ENOTDIR/,
  })
})

t.test('an unreadable CA names the file that could not be read', async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  await ensureCa(cert, key)
  await t.rejects(loadCa(cert, join(dir, 'missing-key.pem')), {
    code: 'PC_ERR_CA_UNREADABLE',
    message: /cannot read the CA key .*missing-key\.pem: ENOENT/,
  })
})

t.test('a CA clients would refuse is refused at start, saying why', async (t) => {
  const dir = t.testdir()
  // A server certificate and its key: a matching pair, but no CA.
  const upstream = createTestCa(t).issue(['leaf.test'])
  writeFileSync(join(dir, 'leaf.pem'), upstream.cert)
  writeFileSync(join(dir, 'leaf-key.pem'), upstream.key, { mode: 0o600 })
  await t.rejects(loadCa(join(dir, 'leaf.pem'), join(dir, 'leaf-key.pem')), {
    code: 'PC_ERR_CA_UNREADABLE',
    message: /leaf\.pem is not a CA certificate \(no basicConstraints CA:TRUE\)/,
  })
  // A CA made eleven years ago (valid for ten): expired.
  const old = createCaMaterial('old', new Date(Date.now() - 11 * 365 * 24 * 3600_000))
  writeFileSync(join(dir, 'old.pem'), old.certPem)
  writeFileSync(join(dir, 'old-key.pem'), old.keyPem, { mode: 0o600 })
  await t.rejects(loadCa(join(dir, 'old.pem'), join(dir, 'old-key.pem')), {
    code: 'PC_ERR_CA_UNREADABLE',
    message: /old\.pem expired on /,
  })
})

t.test("a key that is not the certificate's says so", async (t) => {
  const dir = t.testdir({ a: {}, b: {} })
  const [a, b] = [join(dir, 'a'), join(dir, 'b')]
  await ensureCa(join(a, 'ca.pem'), join(a, 'ca-key.pem'))
  await ensureCa(join(b, 'ca.pem'), join(b, 'ca-key.pem'))
  await t.rejects(loadCa(join(a, 'ca.pem'), join(b, 'ca-key.pem')), {
    message: /ca-key\.pem is not the key of .*ca\.pem/,
  })
})

t.test('a CA near its end, or a key others can read, is used with a warning', async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  // Made 10 years less 10 days ago: 10 days left.
  const material = createCaMaterial('ending', new Date(Date.now() - (10 * 365 - 10) * 24 * 3600_000))
  writeFileSync(cert, material.certPem)
  writeFileSync(key, material.keyPem)
  chmodSync(key, 0o644)
  const warnings: CaWarning[] = []
  const ca = await loadCa(cert, key, (w) => warnings.push(w))
  t.same(
    warnings.map((w) => w.code),
    ['PC_CA_EXPIRES_SOON', 'PC_CA_KEY_READABLE'],
  )
  t.match(warnings[1]?.message, /mode 0644.*chmod 600/)
  // Leaves end with the CA, not 30 days on.
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = mintLeaf(
    'x.test',
    forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    ca,
    createPrivateKey(ca.keyPem),
    new Date(),
  )
  t.equal(new X509Certificate(pem).validTo, new X509Certificate(ca.certPem).validTo, 'the leaf ends with its CA')
})

t.test('a leaf for an IPv4 host also names its IPv4-mapped IPv6 form, as a client may have written it', async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  await ensureCa(cert, key)
  const ca = await loadCa(cert, key)
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const mint = (host: string) =>
    new X509Certificate(
      mintLeaf(
        host,
        forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
        ca,
        createPrivateKey(ca.keyPem),
        new Date(),
      ),
    )
  const v4 = mint('127.0.0.1')
  t.equal(v4.checkIP('127.0.0.1'), '127.0.0.1')
  t.ok(v4.checkIP('::ffff:127.0.0.1'), '[::ffff:127.0.0.1] verifies too')
  t.equal(v4.checkIP('127.0.0.2'), undefined)
  const v6 = mint('::1')
  t.ok(v6.checkIP('::1'))
})

t.test("a leaf's common name is a UTF8String: Chromium refuses `_` or `*` in a PrintableString", async (t) => {
  const dir = t.testdir()
  const [cert, key] = [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')]
  await ensureCa(cert, key)
  const ca = await loadCa(cert, key)
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  for (const host of ['my_host.wc.test', '*.wc.test', 'plain.test']) {
    const pem = mintLeaf(
      host,
      forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
      ca,
      createPrivateKey(ca.keyPem),
      new Date(),
    )
    const cn = forge.pki.certificateFromPem(pem).subject.getField('CN') as { value: string; valueTagClass: number }
    t.equal(cn.value, host)
    t.equal(cn.valueTagClass, forge.asn1.Type.UTF8, `${host}: UTF8String`)
    t.match(new X509Certificate(pem).subject, `CN=${host}`, 'and node reads it')
  }
})

t.test('the CA directory is created writable by its owner only, whatever the umask', async (t) => {
  const dir = join(t.testdir(), 'fresh', 'certs')
  const before = process.umask(0)
  try {
    await ensureCa(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'))
  } finally {
    process.umask(before)
  }
  t.equal(statSync(dir).mode & 0o777, 0o755)
  t.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600)
})
