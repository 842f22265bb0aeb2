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
