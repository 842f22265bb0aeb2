import t from 'tap'
import { mapSocketError } from '../../../src/net/dial.js'

const CASES: ReadonlyArray<readonly [error: unknown, kind: string, behaviour: string]> = [
  [{ code: 'ECONNREFUSED', syscall: 'connect' }, 'refused', 'a refused connection'],
  [{ code: 'ECONNRESET', syscall: 'read' }, 'reset', 'a reset read from the socket'],
  [{ code: 'ECONNRESET' }, 'no_answer', "node's 'socket hang up': closed before any answer"],
  [{ code: 'UPSTREAM_CLOSED' }, 'no_answer', 'the upstream client saw the close before an answer'],
  [{ code: 'HPE_INVALID_CONSTANT' }, 'bad_answer', 'an answer the HTTP parser refused'],
  [{ code: 'EMFILE', syscall: 'connect' }, 'out_of_descriptors', 'the process is out of descriptors'],
  [{ code: 'ENFILE', syscall: 'connect' }, 'out_of_descriptors', 'the system is out of descriptors'],
  [{ code: 'ETIMEDOUT' }, 'timeout', 'a timeout'],
  [{ code: 'ENOTFOUND' }, 'dns', 'a name that does not resolve'],
  [{ code: 'EHOSTUNREACH' }, 'unreachable', 'an unreachable host'],
  [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'tls_verify', 'a certificate for another name'],
  [{ code: 'INVALID_PURPOSE' }, 'tls_verify', 'a certificate not for servers (extended key usage)'],
  [{ code: 'INVALID_CA' }, 'tls_verify', 'a chain through a certificate that is not a CA'],
  [
    { code: 'UNSPECIFIED', message: 'CA signature digest algorithm too weak' },
    'tls_verify',
    'a verify result node has no name for (a SHA-1 signature)',
  ],
  [{ code: 'ERR_SSL_WRONG_VERSION_NUMBER' }, 'bad_answer', 'an upstream not speaking TLS'],
  [
    { code: 'EPROTO', message: 'write EPROTO 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:x' },
    'bad_answer',
    'not TLS, met while writing',
  ],
  [
    { code: 'EPROTO', message: 'write EPROTO 80:error:0A000410:SSL routines::sslv3 alert handshake failure' },
    'tls_handshake',
    'an alert met while writing',
  ],
  [{ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }, 'tls_handshake', 'no TLS version in common'],
  [{ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' }, 'tls_handshake', 'a handshake the upstream refused'],
  [new Error('no code'), 'reset', 'an error without a code'],
]

for (const [error, kind, behaviour] of CASES) {
  t.test(`${behaviour} is ${kind}`, async (t) => {
    t.equal(mapSocketError(error), kind)
  })
}
