import { connect, type OnReadOpts, type Socket } from 'node:net'

/**
 * Why an upstream leg failed. `no_answer`: the upstream closed before any answer; `bad_answer`: what it
 * sent is not HTTP (or not TLS, where TLS was expected); `tls_handshake`: the TLS handshake failed before
 * any certificate was judged (no version or cipher in common, an alert); `encoded_answer`: a compressed
 * answer where the proxy must read the body to mask an injected credential; `out_of_descriptors`: the proxy itself has no file descriptor left (EMFILE/ENFILE:
 * a problem on the proxy host, not the network).
 */
export type UpstreamFailureKind =
  | 'timeout'
  | 'refused'
  | 'reset'
  | 'no_answer'
  | 'bad_answer'
  | 'dns'
  | 'unreachable'
  | 'tls_verify'
  | 'tls_handshake'
  | 'head_too_large'
  | 'encoded_answer'
  | 'out_of_descriptors'
export interface UpstreamFailure {
  readonly kind: 'failure'
  readonly failure: UpstreamFailureKind
}

const TLS_VERIFY = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
  // OpenSSL's other verify results, as node names them: a chain through a non-CA, a leaf not for
  // servers (extended key usage), a chain too deep, a certificate it cannot read.
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REJECTED',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  // The rest of node's names for a verify result (CRLs, memory), and UNSPECIFIED: node's code for every
  // result it has no name for, among them OpenSSL's security-level refusals ("CA signature digest
  // algorithm too weak" for SHA-1, "EE certificate key too weak" for RSA-1024). Left out, they read as a reset.
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'CRL_SIGNATURE_FAILURE',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'OUT_OF_MEM',
  'UNSPECIFIED',
])

/** The same as OpenSSL's reason text (`…:ssl3_get_record:wrong version number:…`). */
const NOT_TLS_REASON =
  /wrong version number|packet length too long|unknown protocol|http request|record length mismatch/i

/** OpenSSL's reading of bytes that are not a TLS record: the upstream is not speaking TLS. */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_RECORD_LENGTH_MISMATCH',
])

/** The one place socket errno codes are interpreted. */
export function mapSocketError(err: unknown): UpstreamFailureKind {
  const e = err as { code?: unknown; syscall?: unknown; name?: unknown; message?: unknown } | null
  const code = e?.code
  if (typeof code !== 'string') return 'reset'
  if (TLS_VERIFY.has(code)) return 'tls_verify'
  if (NOT_TLS.has(code)) return 'bad_answer'
  // A TLS failure met while writing comes as EPROTO, OpenSSL's reason only in the message.
  if (code === 'EPROTO')
    return typeof e?.message === 'string' && NOT_TLS_REASON.test(e.message) ? 'bad_answer' : 'tls_handshake'
  // Any other OpenSSL failure is the handshake's (alerts, no shared version or cipher).
  if (code.startsWith('ERR_SSL_')) return 'tls_handshake'
  // The HTTP parser refused the upstream's answer: too large for it, or not HTTP.
  if (code === 'HPE_HEADER_OVERFLOW') return 'head_too_large'
  if (code.startsWith('HPE_')) return 'bad_answer'
  switch (code) {
    // The upstream client (net/http1-client.ts): the upstream closed before its answer was complete.
    case 'UPSTREAM_CLOSED':
      return 'no_answer'
    case 'ECONNRESET':
      // A reset read from the socket has a syscall; node's "socket hang up" (closed before any answer) has none.
      return typeof e?.syscall === 'string' ? 'reset' : 'no_answer'
    case 'EMFILE':
    case 'ENFILE':
      return 'out_of_descriptors'
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return 'timeout'
    case 'ECONNREFUSED':
      return 'refused'
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'ENODATA':
      return 'dns'
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'EACCES':
    case 'EPERM':
      return 'unreachable'
    default:
      return 'reset'
  }
}

/** Connect to the address that was checked (never a hostname) within timeoutMs; `onread` hands reads to a caller-owned buffer. */
export function dialChecked(
  address: string,
  port: number,
  timeoutMs: number,
  onread?: OnReadOpts,
): Promise<Socket | UpstreamFailure> {
  return new Promise((resolve) => {
    // allowHalfOpen: a server that half-closes (FIN after its answer) may still be sent the rest of the client's bytes.
    const base = { host: address, port, noDelay: true, allowHalfOpen: true }
    const socket = connect(onread ? { ...base, onread } : base)
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ kind: 'failure', failure: 'timeout' })
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ kind: 'failure', failure: mapSocketError(err) })
    })
  })
}
