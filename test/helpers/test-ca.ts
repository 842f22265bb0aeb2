import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import forge from 'node-forge'
import type { Test } from 'tap'
import { createCaMaterial } from '../../src/tls/ca.js'
import { mintLeaf } from '../../src/tls/leaf-certs.js'

/** A throwaway CA standing in for the public PKI: upstream origins are signed by it. */
export interface TestCa {
  readonly certPem: string
  readonly certFile: string
  issue(names: readonly string[], opts?: { expired?: boolean }): { key: string; cert: string }
}

export function createTestCa(t: Test): TestCa {
  // Not t.testdir(): that directory belongs to startPortcullis for the same test, and a second call wipes it.
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { certPem, keyPem } = createCaMaterial('Portcullis test upstream CA')
  const certFile = join(dir, 'upstream-ca.pem')
  writeFileSync(certFile, certPem)
  const caPromise = { certPem, keyPem }
  return {
    certPem,
    certFile,
    issue(names, opts = {}) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const pub = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
      const cert = forge.pki.certificateFromPem(caPromise.certPem)
      const ski = (cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string }).subjectKeyIdentifier
      const now = opts.expired ? new Date(Date.now() - 90 * 24 * 3600_000) : new Date()
      // mintLeaf names one host; tests pin one name per origin.
      const pem = mintLeaf(
        names[0] ?? 'localhost',
        pub,
        { cert, certPem, keyPem, fingerprint256: '', subjectKeyId: ski },
        createPrivateKey(keyPem),
        now,
      )
      return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert: pem }
    },
  }
}
