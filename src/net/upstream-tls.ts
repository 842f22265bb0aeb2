import { isIP } from 'node:net'
import {
  checkServerIdentity,
  createSecureContext,
  DEFAULT_CIPHERS,
  type PeerCertificate,
  type SecureContext,
} from 'node:tls'

/**
 * How the upstream leg checks a server: the rules are those of the clients the proxy stands in for, so
 * an agent is never given, through the proxy, an origin its own client would have refused.
 *
 * - OpenSSL security level 2 (Debian's curl and OpenSSL, modern browsers): no RSA/DSA/DH key under
 *   2048 bits, no ECC under 224, no SHA-1 signature in the chain. Node's bundled OpenSSL runs at
 *   level 1, which takes an RSA-1024 origin.
 * - The server's name must be in the certificate's subjectAltName (RFC 6125 §6.4.4; Chromium since
 *   58, Go since 1.15): node's checkServerIdentity falls back to the subject CN when there is no DNS
 *   name in it, which these clients refuse.
 */

/** The one SecureContext of the upstream leg: these roots, at security level 2. */
export function createUpstreamSecureContext(ca: readonly string[]): SecureContext {
  // DEFAULT_CIPHERS (node's list, or --tls-cipher-list) keeps the suites; only the level is raised.
  return createSecureContext({ ca: [...ca], ciphers: `${DEFAULT_CIPHERS}:@SECLEVEL=2` })
}

/** A DNS name the certificate names in its subjectAltName, as node's checkServerIdentity reads it. */
const SAN_DNS = /(?:^|, )DNS:/

/**
 * tls.checkServerIdentity without its CN fallback: a host name needs a DNS subjectAltName (an IP
 * literal already needs an IP one there). The error is node's own for a name mismatch, so it is
 * mapped and reported as any other (ERR_TLS_CERT_ALTNAME_INVALID).
 */
export function checkUpstreamIdentity(host: string, cert: PeerCertificate): Error | undefined {
  if (isIP(host) === 0 && !SAN_DNS.test(cert.subjectaltname ?? '')) {
    const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : ''
    return Object.assign(
      new Error(
        `Hostname/IP does not match certificate's altnames: Host: ${host}. has no DNS name in the certificate's subjectAltName (subject CN ${JSON.stringify(cn)} is not used)`,
      ),
      { code: 'ERR_TLS_CERT_ALTNAME_INVALID', reason: 'no DNS subjectAltName', host, cert },
    )
  }
  return checkServerIdentity(host, cert)
}
