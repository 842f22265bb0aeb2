import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'
import { LRUCache } from 'lru-cache'
import forge from 'node-forge'
import ipaddr from 'ipaddr.js'
import { isIpLiteral } from '../net/host.js'
import type { CertificateAuthority } from './ca.js'

export interface LeafCertCache {
  /** A SecureContext for `host` (normalised), minted on first use and cached. */
  get(host: string): SecureContext
  readonly stats: { mints: number; hits: number }
}

const LEAF_VALIDITY_MS = 30 * 24 * 3600_000

export interface LeafOptions {
  readonly capacity?: number
  /** The clock leaves are minted by (validity starts an hour before it). */
  readonly now?: () => Date
}

/**
 * One leaf key for every host (made once, at start: per-host RSA keygen on the
 * hot path is the classic MITM-proxy bottleneck), certificates built with
 * node-forge and signed with the CA key in native code, SecureContexts kept in
 * an LRU. Minting is synchronous, so concurrent first requests for one host
 * cannot mint twice.
 */
export function createLeafCertCache(ca: CertificateAuthority, opts: LeafOptions = {}): LeafCertCache {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const leafKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const leafPublic = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString())
  const caKey: KeyObject = createPrivateKey(ca.keyPem)
  const now = opts.now ?? (() => new Date())
  const cache = new LRUCache<string, SecureContext>({ max: opts.capacity ?? 2000, ttl: LEAF_VALIDITY_MS / 2 })
  const stats = { mints: 0, hits: 0 }
  return {
    stats,
    get(host) {
      const hit = cache.get(host)
      if (hit) {
        stats.hits++
        return hit
      }
      const certPem = mintLeaf(host, leafPublic, ca, caKey, now())
      const ctx = createSecureContext({ key: leafKeyPem, cert: `${certPem}${ca.certPem}` })
      cache.set(host, ctx)
      stats.mints++
      return ctx
    },
  }
}

/**
 * An IPv4 host also as its IPv4-mapped IPv6 form: `[::ffff:127.0.0.1]` is decided as 127.0.0.1, but
 * the client checks the leaf against the address it wrote.
 */
function ipNames(host: string): { type: 7; ip: string }[] {
  if (!ipaddr.IPv4.isValidFourPartDecimal(host)) return [{ type: 7, ip: host }]
  return [
    { type: 7, ip: host },
    { type: 7, ip: ipaddr.IPv4.parse(host).toIPv4MappedAddress().toNormalizedString() },
  ]
}

export function mintLeaf(
  host: string,
  publicKey: forge.pki.PublicKey,
  ca: CertificateAuthority,
  caKey: KeyObject,
  now: Date,
): string {
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  const serial = randomBytes(16)
  serial[0] = ((serial[0] ?? 1) & 0x7f) | 0x01
  cert.serialNumber = serial.toString('hex')
  cert.validity.notBefore = new Date(now.getTime() - 3600_000)
  // Never past the CA's own end: a client may refuse a leaf that outlives its issuer.
  cert.validity.notAfter = new Date(Math.min(now.getTime() + LEAF_VALIDITY_MS, ca.cert.validity.notAfter.getTime()))
  // A UTF8String, not forge's default PrintableString, which has no `_` or `*`: Chromium refuses a
  // certificate whose PrintableString holds one (ERR_SSL_SERVER_CERT_BAD_FORMAT for my_host.example).
  cert.setSubject([
    {
      name: 'commonName',
      value: host.length <= 64 ? host : 'portcullis-leaf',
      // @types/node-forge types this field as a tag class; forge reads it as the tag type.
      valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class,
    },
  ])
  cert.setIssuer(ca.cert.subject.attributes)
  const ip = isIpLiteral(host)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: ip ? ipNames(host) : [{ type: 2, value: host }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(ca.subjectKeyId) },
  ])
  // forge builds the TBSCertificate; the RSA signature is computed natively (forge's JS bignum signing is ~20x slower).
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption as string
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption as string
  // getTBSCertificate is public in node-forge but missing from @types/node-forge.
  const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }
  const tbs = forge.asn1.toDer(pki.getTBSCertificate(cert)).getBytes()
  cert.signature = sign('sha256', Buffer.from(tbs, 'binary'), caKey).toString('binary')
  return forge.pki.certificateToPem(cert)
}
