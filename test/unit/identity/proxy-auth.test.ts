import t from 'tap'
import { parseProxyAuthorization, PROXY_AUTHORIZATION_MAX_CHARS } from '../../../src/identity/proxy-auth.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

type Expected = ReturnType<typeof parseProxyAuthorization>
const CASES: ReadonlyArray<readonly [string, string | undefined, Expected]> = [
  ['an absent header is none', undefined, { kind: 'none' }],
  [
    'Basic credentials are parsed',
    `Basic ${b64('builder:s3cret')}`,
    { kind: 'basic', user: 'builder', password: 's3cret' },
  ],
  ['the scheme is case-insensitive', `bAsIc ${b64('a:b')}`, { kind: 'basic', user: 'a', password: 'b' }],
  ['the password may contain `:`', `Basic ${b64('a:b:c')}`, { kind: 'basic', user: 'a', password: 'b:c' }],
  ['an empty password is kept', `Basic ${b64('a:')}`, { kind: 'basic', user: 'a', password: '' }],
  ['an empty user is kept', `Basic ${b64(':tok')}`, { kind: 'basic', user: '', password: 'tok' }],
  ['UTF-8 is decoded', `Basic ${b64('ägent:pässword')}`, { kind: 'basic', user: 'ägent', password: 'pässword' }],
  ['surrounding whitespace is ignored', `  Basic ${b64('a:b')}  `, { kind: 'basic', user: 'a', password: 'b' }],
  [
    'several spaces after the scheme are accepted',
    `Basic   ${b64('a:b')}`,
    { kind: 'basic', user: 'a', password: 'b' },
  ],
  ['an empty value is malformed', '', { kind: 'malformed' }],
  ['a scheme alone is malformed', 'Basic', { kind: 'malformed' }],
  ['`Basic ` with no credentials is malformed', 'Basic ', { kind: 'malformed' }],
  ['another scheme is malformed', `Bearer ${b64('a:b')}`, { kind: 'malformed' }],
  ['no colon is malformed', `Basic ${b64('justatoken')}`, { kind: 'malformed' }],
  ['unpadded base64 is malformed', `Basic ${b64('a:bc').replace(/=+$/, '')}`, { kind: 'malformed' }],
  ['base64url characters are malformed', 'Basic YT-_Yg==', { kind: 'malformed' }],
  ['non-canonical padding bits are malformed', 'Basic YTpiYx==', { kind: 'malformed' }],
  ['a space inside the credentials is malformed', 'Basic YTpi Yw==', { kind: 'malformed' }],
  ['two joined headers are malformed', `Basic ${b64('a:b')}, Basic ${b64('c:d')}`, { kind: 'malformed' }],
  ['invalid UTF-8 is malformed', `Basic ${Buffer.from([0x61, 0x3a, 0xff]).toString('base64')}`, { kind: 'malformed' }],
  ['a tab separator is malformed', `Basic\t${b64('a:b')}`, { kind: 'malformed' }],
]

for (const [behaviour, value, expected] of CASES) {
  t.test(behaviour, async (t) => {
    t.same(parseProxyAuthorization(value), expected)
  })
}

t.test('a value just under the bound is parsed', async (t) => {
  const password = 'x'.repeat(2900)
  const value = `Basic ${b64(`a:${password}`)}`
  t.ok(value.length <= PROXY_AUTHORIZATION_MAX_CHARS)
  t.same(parseProxyAuthorization(value), { kind: 'basic', user: 'a', password })
})

t.test('a value over 4 KiB is malformed', async (t) => {
  const value = `Basic ${b64(`a:${'x'.repeat(3100)}`)}`
  t.ok(value.length > PROXY_AUTHORIZATION_MAX_CHARS)
  t.same(parseProxyAuthorization(value), { kind: 'malformed' })
})
