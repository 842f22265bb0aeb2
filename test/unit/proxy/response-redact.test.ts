import t from 'tap'
import { createSecretMasker, maskName, maskSecrets, maskText } from '../../../src/proxy/response-redact.js'

const SECRET = Buffer.from('s3cr3t-token-value')

t.test('every occurrence of a secret is overwritten with stars of the same length', async (t) => {
  const out = maskSecrets(Buffer.from(`a ${SECRET} b ${SECRET}`), [SECRET])
  t.equal(out.toString(), `a ${'*'.repeat(SECRET.length)} b ${'*'.repeat(SECRET.length)}`)
})

t.test('data without a secret is returned as it is (no copy)', async (t) => {
  const data = Buffer.from('nothing to see')
  t.equal(maskSecrets(data, [SECRET]), data)
})

t.test('a secret split across chunks of a stream is masked', async (t) => {
  const whole = Buffer.from(`{"headers":{"Authorization":"Bearer ${SECRET}"}}`)
  for (let size = 1; size <= whole.length; size += 3) {
    const m = createSecretMasker([SECRET])
    const parts: Buffer[] = []
    for (let i = 0; i < whole.length; i += size) parts.push(m.push(whole.subarray(i, i + size)))
    parts.push(m.flush())
    const out = Buffer.concat(parts)
    t.equal(out.length, whole.length, `chunks of ${size}: same length`)
    t.notOk(out.includes(SECRET), `chunks of ${size}: no secret left`)
  }
})

t.test('header values are masked as text', async (t) => {
  t.equal(maskText(`Bearer ${SECRET}`, [SECRET.toString()]), `Bearer ${'*'.repeat(SECRET.length)}`)
})

t.test('a secret echoed as a field name is masked in any case, and the name stays a token', async (t) => {
  const secret = 'KEYabcdef0123456789'
  const masked = maskName(`x-${secret.toLowerCase()}-echo`, [secret.toLowerCase()])
  t.equal(masked, `x-${'*'.repeat(secret.length)}-echo`)
  t.equal(maskName(`X-${secret}`, [secret.toLowerCase()]), `X-${'*'.repeat(secret.length)}`)
  t.match(masked, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'still a valid field name')
  t.equal(maskName('content-type', [secret.toLowerCase()]), 'content-type')
})
