import t from 'tap'
import { findSecret, redactSecrets, SECRET_DETECTORS } from '../../../src/proxy/secret-scan.js'

const FOUND: ReadonlyArray<readonly [string, string, string]> = [
  ['a PEM RSA private key', 'key=-----BEGIN RSA PRIVATE KEY-----\nMIIE', 'private_key'],
  ['an OpenSSH private key', '-----BEGIN OPENSSH PRIVATE KEY-----', 'private_key'],
  ['a PKCS#8 private key', '-----BEGIN PRIVATE KEY-----', 'private_key'],
  ['an AWS access key id', '{"id":"AKIAIOSFODNN7EXAMPLE"}', 'aws_access_key_id'],
  ['an AWS temporary key id', 'ASIAY34FZKBOKMUTVV7A', 'aws_access_key_id'],
  [
    'an AWS secret key with its name',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'aws_secret_access_key',
  ],
  ['a GitHub classic token', `token ghp_${'A1b2'.repeat(9)}`, 'github_token'],
  ['a GitHub app token', `ghs_${'x9Y8'.repeat(9)}`, 'github_token'],
  ['a GitHub fine-grained token', `github_pat_${'a'.repeat(22)}_${'B'.repeat(59)}`, 'github_fine_grained_token'],
  ['a GitLab token', 'glpat-abcdefghij0123456789', 'gitlab_token'],
  ['a Slack bot token', 'xoxb-123456789012-abcdefghijkl', 'slack_token'],
  ['a Google API key', `AIza${'S'.repeat(35)}`, 'google_api_key'],
  ['a Stripe live key', `sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`, 'stripe_secret_key'],
  ['an npm token', `npm_${'a'.repeat(36)}`, 'npm_token'],
  ['an Anthropic key', `sk-ant-api03-${'x'.repeat(93)}`, 'anthropic_api_key'],
  ['an OpenAI project key', `sk-proj-${'Ab1_'.repeat(40)}`, 'openai_api_key'],
]
for (const [behaviour, text, detector] of FOUND) {
  t.test(`finds ${behaviour}`, async (t) => {
    t.equal(findSecret([text]), detector)
  })
}

const CLEAN: ReadonlyArray<readonly [string, string]> = [
  ['prose about keys', 'rotate the AWS access key and the private key every 90 days'],
  ['a sha256 hex digest', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['a lower-case AKIA look-alike', 'akiaiosfodnn7example'],
  ['a public key', '-----BEGIN PUBLIC KEY-----'],
  ['a certificate', '-----BEGIN CERTIFICATE-----'],
  ['a too-short GitHub prefix', 'ghp_short'],
  ['an npm package tarball name', 'npm_lifecycle_event=install'],
  ['a Stripe test key', `sk_test_${'4eC39HqLyjWDarjtT1zdp7dc'}`],
]
for (const [behaviour, text] of CLEAN) {
  t.test(`does not flag ${behaviour}`, async (t) => {
    t.equal(findSecret([text]), null)
  })
}

t.test('every text is scanned; the first hit is named', async (t) => {
  t.equal(findSecret(['clean', 'also clean text here', 'AKIAIOSFODNN7EXAMPLE']), 'aws_access_key_id')
  t.equal(findSecret([]), null)
})

t.test('every detector has a positive case here', async (t) => {
  t.same([...new Set(FOUND.map((f) => f[2]))].sort(), [...SECRET_DETECTORS].sort())
})

t.test('more shapes: AWS JSON names, PuTTY keys, glued and over-long tokens', async (t) => {
  t.equal(findSecret(['{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}']), 'aws_secret_access_key')
  t.equal(findSecret(['PuTTY-User-Key-File-3: ssh-ed25519']), 'private_key')
  t.equal(findSecret(['key_AKIAIOSFODNN7EXAMPLE_end']), 'aws_access_key_id')
  t.equal(findSecret([`ghp_${'a'.repeat(300)}`]), 'github_token')
})

t.test('redactSecrets replaces each credential by its kind', async (t) => {
  t.equal(redactSecrets('/leak/AKIAIOSFODNN7EXAMPLE/x'), '/leak/<redacted:aws_access_key_id>/x')
  t.equal(redactSecrets('/clean/path'), '/clean/path')
})

const KEY_ID = 'AKIAIOSFODNN7EXAMPLE'
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const utf16 = (s: string): string => Buffer.from(s, 'utf16le').toString('latin1')
const far = 'x'.repeat(1000)

// Each spelling a form, cookie or JSON parser or a UTF-16 reader turns back into the key.
const SPELLED: ReadonlyArray<readonly [string, string, string]> = [
  ['a percent-encoded letter', `k=%41KIAIOSFODNN7EXAMPLE`, 'aws_access_key_id'],
  ['lower-case percent hex', 'k=%41%4bIAIOSFODNN7EXAMPLE', 'aws_access_key_id'],
  [
    'every character percent-encoded',
    [...KEY_ID].map((c) => `%${c.charCodeAt(0).toString(16)}`).join(''),
    'aws_access_key_id',
  ],
  ['a JSON \\u escape', '{"k":"\\u0041KIAIOSFODNN7EXAMPLE"}', 'aws_access_key_id'],
  [
    'a JSON \\/ inside a secret',
    `{"aws_secret_access_key":"${SECRET.replaceAll('/', '\\/')}"}`,
    'aws_secret_access_key',
  ],
  ['a PEM header with + for spaces', 'k=-----BEGIN+RSA+PRIVATE+KEY-----%0AMIIE', 'private_key'],
  ['a PEM header with + and no percent escape', 'k=-----BEGIN+OPENSSH+PRIVATE+KEY-----', 'private_key'],
  ['a PEM header with %20 and +', 'k=%2D----BEGIN%20EC+PRIVATE+KEY-----', 'private_key'],
  ['an AWS secret whose separator is +', `aws_secret_access_key+=+${SECRET}`, 'aws_secret_access_key'],
  [
    'an AWS secret followed by + (a space in a form)',
    `aws_secret_access_key=${SECRET}+next=1`,
    'aws_secret_access_key',
  ],
  ['UTF-16LE text', utf16(`token=ghp_${'A1b2'.repeat(9)}`), 'github_token'],
  ['UTF-16LE text after a long clean prefix', `${far}${utf16(KEY_ID)}`, 'aws_access_key_id'],
  ['an escape far from an earlier one', `a=%20&${far}&k=%41KIAIOSFODNN7EXAMPLE`, 'aws_access_key_id'],
  ['a key right after an escape', `k=%3D${KEY_ID}`, 'aws_access_key_id'],
  ['a key whose last character is escaped', `k=${KEY_ID.slice(0, -1)}%45&x`, 'aws_access_key_id'],
  ['a key starting right after a JSON escape', `"\\n${KEY_ID}"`, 'aws_access_key_id'],
  ['an escaped \\\\ before a key', `"\\\\${KEY_ID}"`, 'aws_access_key_id'],
  ['an invalid escape beside a decoded one', `k=%41KIAIOSFODNN7EXAMPLE%zz`, 'aws_access_key_id'],
  ['a JSON escape past latin1 before a key', `"\\u4e2d${KEY_ID}"`, 'aws_access_key_id'],
  ['an em space escaped around a separator', `{"SecretAccessKey\\u2003:\\u2003${SECRET}"}`, 'aws_secret_access_key'],
  [
    'a long body with every character percent-encoded',
    [...`${'clean text, '.repeat(400)}${KEY_ID}`].map((c) => `%${c.charCodeAt(0).toString(16)}`).join(''),
    'aws_access_key_id',
  ],
]
for (const [behaviour, text, detector] of SPELLED) {
  t.test(`finds a key spelled as ${behaviour}`, async (t) => {
    t.equal(findSecret([text]), detector)
  })
}

const NOT_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['an escape that glues a key to a letter', `%41${KEY_ID}`],
  ['a JSON escape that glues a key to a digit', `\\u0031${KEY_ID}`],
  ['an escaped backslash followed by u0041', '\\\\u0041KIAIOSFODNN7EXAMPLE'],
  ['invalid percent escapes', '%4G%zz%%41KIAIOSFODNN7EXAMPL'],
  ['base64 with + that is no PEM header', `${'ab+cd/ef'.repeat(200)}-----BEGIN+CERTIFICATE-----`],
  ['an AWS secret one character short, however spelled', `aws_secret_access_key=${SECRET.slice(1)}+x`],
  ['an AWS secret with nine spaces before it', `aws_secret_access_key=         ${SECRET}`],
  ['UTF-16 text that glues a key to a letter', utf16(`B${KEY_ID}`)],
]
for (const [behaviour, text] of NOT_KEYS) {
  t.test(`does not flag ${behaviour}`, async (t) => {
    t.equal(findSecret([text]), null)
  })
}

const EDGES: ReadonlyArray<readonly [string, string, string | null]> = [
  ['a case-mixed AWS secret name', `SeCrEt_AcCeSs_KeY: "${SECRET}"`, 'aws_secret_access_key'],
  ['an AWS key id one character too long', `${KEY_ID}Q`, null],
  ['an AWS key id after upper case', `X${KEY_ID}`, null],
  ['ABIA and ACCA key ids', `x ABIA${'A'.repeat(16)} y`, 'aws_access_key_id'],
  ['an ACCA key id', `ACCA${'B'.repeat(16)}`, 'aws_access_key_id'],
  ['a Stripe restricted key', `rk_live_${'a'.repeat(24)}`, 'stripe_secret_key'],
  ['a Stripe key glued to a letter', `xsk_live_${'a'.repeat(24)}`, null],
  ['a GitHub prefix of another letter', `ghx_${'a'.repeat(36)}`, null],
  ['a Slack token of ten characters', 'xoxp-0123456789', 'slack_token'],
  ['a Slack token of nine', 'xoxp-012345678 ', null],
  ['an Anthropic key with eleven letters', `sk-ant-abcdefghijk03-${'x'.repeat(80)}`, null],
  ['an OpenAI key with its marker', `sk-${'a'.repeat(20)}T3BlbkFJ${'b'.repeat(20)}`, 'openai_api_key'],
  ['an OpenAI project key with its marker', `sk-proj-${'a'.repeat(20)}T3BlbkFJ${'b'.repeat(20)}`, 'openai_api_key'],
  ['an OpenAI key whose marker is too far', `sk-${'a'.repeat(101)}T3BlbkFJ${'b'.repeat(20)}`, null],
  ['an OpenAI key whose marker is too near', `sk-${'a'.repeat(19)}T3BlbkFJ${'b'.repeat(20)}`, null],
  ['an OpenAI key cut short after its marker', `sk-${'a'.repeat(20)}T3BlbkFJ${'b'.repeat(19)}`, null],
  [
    'an OpenAI key among many sk- runs',
    `${'sk-'.repeat(2000)} sk-${'a'.repeat(40)}T3BlbkFJ${'b'.repeat(20)}`,
    'openai_api_key',
  ],
  ['a run of sk- alone', 'sk-'.repeat(5000), null],
  ['a PEM header of an unknown kind', '-----BEGIN DH PRIVATE KEY-----', null],
  ['a PEM block header', '-----BEGIN PGP PRIVATE KEY BLOCK-----', 'private_key'],
]
for (const [behaviour, text, detector] of EDGES) {
  t.test(`${detector === null ? 'does not flag' : 'finds'} ${behaviour}`, async (t) => {
    t.equal(findSecret([text]), detector)
  })
}

t.test('the first detector in order names a text that holds several', async (t) => {
  t.equal(findSecret([`ghp_${'a'.repeat(36)} ${KEY_ID}`]), 'aws_access_key_id')
  t.equal(findSecret([`%67hp_${'a'.repeat(36)}`, KEY_ID]), 'github_token', 'texts are taken in order')
})

const REDACTED: ReadonlyArray<readonly [string, string, string]> = [
  ['a percent-encoded key as written', '/leak/%41KIAIOSFODNN7EXAMPLE/x', '/leak/<redacted:aws_access_key_id>/x'],
  ['a PEM header spelled with +', '/k?v=-----BEGIN+RSA+PRIVATE+KEY-----&a=1', '/k?v=<redacted:private_key>&a=1'],
  ['two keys', `/a/${KEY_ID}/b/ghp_${'a'.repeat(36)}`, '/a/<redacted:aws_access_key_id>/b/<redacted:github_token>'],
  ['a key seen both as written and decoded, once', `/a?k=${KEY_ID}%20`, '/a?k=<redacted:aws_access_key_id>%20'],
  ['a UTF-16 key', `/u/${utf16(KEY_ID)}/v`, '/u/<redacted:aws_access_key_id>/v'],
]
for (const [behaviour, text, expected] of REDACTED) {
  t.test(`redactSecrets cuts out ${behaviour}`, async (t) => {
    t.equal(redactSecrets(text), expected)
    t.equal(findSecret([redactSecrets(text)]), null)
  })
}
