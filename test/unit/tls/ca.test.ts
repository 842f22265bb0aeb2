import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ensureCa, loadCa } from '../../../src/tls/ca.js'

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
