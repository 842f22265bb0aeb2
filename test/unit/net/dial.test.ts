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
  [new Error('no code'), 'reset', 'an error without a code'],
]

for (const [error, kind, behaviour] of CASES) {
  t.test(`${behaviour} is ${kind}`, async (t) => {
    t.equal(mapSocketError(error), kind)
  })
}
