import t from 'tap'
import { join } from 'node:path'
import { loadStartToken } from '../../../src/admin/token.js'
import { isWeakAdminToken } from '../../../src/identity/weak-tokens.js'
import { capturedLog } from '../../helpers/log.js'

t.test('an admin token that is well known or short is weak; a long random one is not', async (t) => {
  for (const weak of ['admin', 'a', 'changeme', 'portcullis', '123456789012345'])
    t.ok(isWeakAdminToken(weak), `'${weak}' is weak`)
  t.notOk(isWeakAdminToken('q8Jc1-not-guessable-Zr0'))
  t.notOk(isWeakAdminToken('0123456789abcdef'), '16 characters of no known value are enough')
})

t.test('start warns of a weak admin token, and only of a weak one', async (t) => {
  const caKey = join(t.testdir(), 'ca-key.pem')
  for (const [token, warnings] of [
    ['admin', 1],
    ['q8Jc1-not-guessable-Zr0', 0],
  ] as const) {
    const logs = capturedLog()
    t.equal(await loadStartToken({ PORTCULLIS_ADMIN_TOKEN: token }, caKey, logs.log), token)
    t.equal(logs.codes('PC_WEAK_ADMIN_TOKEN'), warnings, `${token}: ${warnings} warning`)
    t.notMatch(JSON.stringify(logs.lines), token === 'admin' ? /"admin"/ : token, 'the token itself is not logged')
  }
})

t.test('start refuses an admin token no Bearer header can carry', async (t) => {
  const caKey = join(t.testdir(), 'ca-key.pem')
  for (const token of ['correct horse battery staple token', 'tab\tseparated-long-token', 'ünïcode-long-admin-token'])
    await t.rejects(
      loadStartToken({ PORTCULLIS_ADMIN_TOKEN: token }, caKey, capturedLog().log),
      { code: 'PC_ERR_ADMIN_TOKEN' },
      JSON.stringify(token),
    )
  t.equal(
    await loadStartToken({ PORTCULLIS_ADMIN_TOKEN: ' q8Jc1-not-guessable-Zr0 \n' }, caKey, capturedLog().log),
    'q8Jc1-not-guessable-Zr0',
    'surrounding space is trimmed',
  )
})
