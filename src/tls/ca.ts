import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
} from 'node:crypto'
import { chmod, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import forge from 'node-forge'
import { PortcullisError } from '../errors.js'

export interface CertificateAuthority {
  readonly certPem: string
  readonly keyPem: string
  readonly cert: forge.pki.Certificate
  /** SHA-256 fingerprint, colon-separated upper-case hex (as browsers and openssl show it). */
  readonly fingerprint256: string
  readonly subjectKeyId: string
}

const CA_VALIDITY_YEARS = 10

function serialNumber(): string {
  // Positive 128-bit serial: a leading 0x01..0x7f byte keeps the DER INTEGER positive.
  const bytes = randomBytes(16)
  bytes[0] = ((bytes[0] ?? 1) & 0x7f) | 0x01
  return bytes.toString('hex')
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256
}

/** A CA certificate with the extensions clients check: basicConstraints CA, keyCertSign/cRLSign, subject key id. */
export function createCaMaterial(
  commonName = 'Portcullis egress CA',
  now = new Date(),
): { certPem: string; keyPem: string } {
  // Key generation in native code: forge's JS RSA keygen takes seconds.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString())
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
  cert.serialNumber = serialNumber()
  cert.validity.notBefore = new Date(now.getTime() - 24 * 3600_000)
  cert.validity.notAfter = new Date(now.getTime() + CA_VALIDITY_YEARS * 365 * 24 * 3600_000)
  const attrs = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'Portcullis' },
  ]
  cert.setSubject(attrs)
  cert.setIssuer(attrs)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ])
  cert.sign(forgeKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem }
}

const NOT_ITS_KEY = "the CA key is not the certificate's key"

function toAuthority(certPem: string, keyPem: string): CertificateAuthority {
  const cert = forge.pki.certificateFromPem(certPem)
  // Validate the key now, not at the first handshake, and that it is this certificate's key.
  const spki = (k: ReturnType<typeof createPublicKey>): Buffer => k.export({ type: 'spki', format: 'der' })
  if (!spki(createPublicKey(createPrivateKey(keyPem))).equals(spki(new X509Certificate(certPem).publicKey)))
    throw new Error(NOT_ITS_KEY)
  const ski = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null
  const subjectKeyId =
    ski?.subjectKeyIdentifier ??
    createHash('sha1')
      .update(forge.asn1.toDer(forge.pki.publicKeyToAsn1(cert.publicKey)).getBytes(), 'binary')
      .digest('hex')
  return { certPem, keyPem, cert, fingerprint256: fingerprintOf(certPem), subjectKeyId }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      `cannot stat ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { cause: err },
    )
  }
}

/**
 * Create the CA files (key 0600) unless both exist. Returns whether they were created. Safe when
 * several instances start at once on one certs/ directory: the key is published with link(2), which
 * only one of them can win; the others wait for the winner's certificate and use that pair.
 */
export async function ensureCa(certFile: string, keyFile: string): Promise<boolean> {
  const [hasCert, hasKey] = await Promise.all([exists(certFile), exists(keyFile)])
  if (hasCert && hasKey) return false
  if (hasCert !== hasKey) {
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      `only one of ${certFile} and ${keyFile} exists; restore the other or delete both to generate a new CA`,
    )
  }
  const { certPem, keyPem } = createCaMaterial()
  try {
    return await publishCa(certFile, keyFile, certPem, keyPem)
  } catch (err) {
    if (err instanceof PortcullisError) throw err
    const e = err as NodeJS.ErrnoException
    // e.path names the file or directory that failed (EACCES on mkdir of certs/, a read-only mount…).
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      `cannot write the new CA${e.path ? ` (${e.path})` : ''}: ${e.code ?? 'error'}; make the directory of ${keyFile} writable by the proxy user, or create the CA with 'portcullis ca init' as one that can`,
      { cause: err },
    )
  }
}

const CA_DIR_MODE = 0o755

async function publishCa(certFile: string, keyFile: string, certPem: string, keyPem: string): Promise<boolean> {
  // Never group- or world-writable, whatever the umask: whoever can write here can swap the CA.
  await mkdir(dirname(keyFile), { recursive: true, mode: CA_DIR_MODE })
  await mkdir(dirname(certFile), { recursive: true, mode: CA_DIR_MODE })
  const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const [tmpKey, tmpCert] = [`${keyFile}${suffix}`, `${certFile}${suffix}`]
  try {
    await writeFile(tmpKey, keyPem, { mode: 0o600 })
    await chmod(tmpKey, 0o600)
    await writeFile(tmpCert, certPem, { mode: 0o644 })
    try {
      await link(tmpKey, keyFile)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      await waitForFile(certFile, CA_WAIT_MS)
      return false
    }
    await rename(tmpCert, certFile)
    return true
  } finally {
    await Promise.all([rm(tmpKey, { force: true }), rm(tmpCert, { force: true })])
  }
}

/** How long an instance that lost the race waits for the winner's certificate. */
const CA_WAIT_MS = 10_000

async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await exists(file))) {
    if (Date.now() > deadline)
      throw new PortcullisError(
        'PC_ERR_CA_UNREADABLE',
        `another instance created the CA key but ${file} did not appear within ${timeoutMs / 1000} s`,
      )
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** What a usable CA may still deserve a word about (logged at start): near its end, a key others can read. */
export interface CaWarning {
  readonly code: 'PC_CA_EXPIRES_SOON' | 'PC_CA_KEY_READABLE'
  readonly message: string
}

/** A CA this close to its end is reported at every start: agents must be given its successor in time. */
const CA_WARN_BEFORE_MS = 30 * 24 * 3600_000

/**
 * The CA in these files, checked as clients will check the leaves it signs: a CA certificate
 * (basicConstraints CA:TRUE, keyCertSign when keyUsage is present), valid now, with its own key. A
 * file pair that fails is refused at start (PC_ERR_CA_UNREADABLE) rather than every intercepted
 * handshake failing later with "invalid CA certificate" on the agent's side.
 */
export async function loadCa(
  certFile: string,
  keyFile: string,
  warn: (w: CaWarning) => void = () => undefined,
  now = new Date(),
): Promise<CertificateAuthority> {
  let certPem: string
  let keyPem: string
  try {
    ;[certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')])
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      `cannot read the CA ${e.path === keyFile ? 'key' : 'certificate'} ${e.path ?? `(${certFile}, ${keyFile})`}: ${e.code ?? 'error'}`,
      { cause: err },
    )
  }
  let ca: CertificateAuthority
  try {
    ca = toAuthority(certPem, keyPem)
  } catch (err) {
    const mismatch = err instanceof Error && err.message === NOT_ITS_KEY
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      mismatch
        ? `the CA key ${keyFile} is not the key of ${certFile}; restore the matching pair, or delete both to generate a new CA`
        : `the CA files ${certFile} / ${keyFile} are not a PEM certificate and key`,
      { cause: err },
    )
  }
  const problem = caProblem(ca, now)
  if (problem !== null)
    throw new PortcullisError(
      'PC_ERR_CA_UNREADABLE',
      `${certFile} ${problem}; name a CA's files in tls.ca_cert/ca_key, or delete both to generate a new one (agents must then trust it)`,
    )
  const ends = ca.cert.validity.notAfter
  if (ends.getTime() - now.getTime() < CA_WARN_BEFORE_MS)
    warn({
      code: 'PC_CA_EXPIRES_SOON',
      message: `the interception CA ${certFile} expires on ${ends.toISOString()}: leaves end with it; give agents its successor before then`,
    })
  const mode = (await stat(keyFile)).mode & 0o777
  if ((mode & 0o077) !== 0)
    warn({
      code: 'PC_CA_KEY_READABLE',
      message: `the CA key ${keyFile} has mode 0${mode.toString(8)}: others on this host can read it and mint certificates every agent trusts; chmod 600 it`,
    })
  return ca
}

/** Why clients would refuse what this CA signs, or null. */
function caProblem(ca: CertificateAuthority, now: Date): string | null {
  const bc = ca.cert.getExtension('basicConstraints') as { cA?: boolean } | null
  if (bc?.cA !== true)
    return 'is not a CA certificate (no basicConstraints CA:TRUE): clients refuse the leaves it signs'
  const ku = ca.cert.getExtension('keyUsage') as { keyCertSign?: boolean } | null
  if (ku !== null && ku.keyCertSign !== true) return 'may not sign certificates (its keyUsage lacks keyCertSign)'
  const { notBefore, notAfter } = ca.cert.validity
  if (notAfter.getTime() <= now.getTime()) return `expired on ${notAfter.toISOString()}`
  if (notBefore.getTime() > now.getTime()) return `is not valid before ${notBefore.toISOString()}`
  return null
}
