import t from 'tap'
import {
  cidrContains,
  formatAuthority,
  isIpLiteral,
  normalizeHost,
  parseAuthority,
  parseCidr,
  toUnicodeHost,
} from '../../../src/net/host.js'

const NORMALIZE: ReadonlyArray<readonly [string, string | null, string]> = [
  // [input, expected, behaviour]
  ['EXAMPLE.com', 'example.com', 'is lower-cased'],
  ['example.com.', 'example.com', 'loses one trailing dot'],
  ['example.com..', null, 'with two trailing dots is invalid'],
  ['.', null, 'a lone dot is invalid'],
  ['', null, 'empty is invalid'],
  ['bücher.de', 'xn--bcher-kva.de', 'Unicode becomes its A-label'],
  ['BÜCHER.de', 'xn--bcher-kva.de', 'upper-case Unicode becomes the same A-label'],
  ['xn--bcher-kva.de', 'xn--bcher-kva.de', 'an A-label stays as it is'],
  ['XN--BCHER-KVA.DE', 'xn--bcher-kva.de', 'an upper-case A-label is lower-cased'],
  ['ex\u3002com', 'ex.com', 'an ideographic full stop separates labels'],
  ['xn--zz.com', null, 'invalid punycode is rejected'],
  ['_dmarc.example.com', '_dmarc.example.com', '`_` is allowed (real DNS uses it)'],
  ['a..b', null, 'an empty label is invalid'],
  ['.example.com', null, 'a leading dot is invalid'],
  [`${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`, 'a 63-octet label is allowed'],
  [`${'a'.repeat(64)}.com`, null, 'a 64-octet label is invalid'],
  [`${'a.'.repeat(126)}a`, `${'a.'.repeat(126)}a`, 'a 253-octet name is allowed'],
  [`${'a.'.repeat(126)}ab`, null, 'a 254-octet name is invalid'],
  ['a'.repeat(2000), null, 'absurdly long input is invalid'],
  ['%41.com', null, '`%` is rejected (no percent-decoding)'],
  ['a b.com', null, 'a space is rejected'],
  ['a\tb.com', null, 'a tab is rejected'],
  ['example.com\n', null, 'a newline is rejected'],
  ['exa\u0000mple.com', null, 'NUL is rejected'],
  ['a\u00a0b.com', null, 'a no-break space is rejected'],
  ['a!b.com', null, '`!` is rejected'],
  ['*.example.com', null, '`*` is rejected'],
  ['user@example.com', null, 'userinfo is rejected'],
  ['example.com/x', null, 'a slash is rejected (not truncated to example.com)'],
  ['example.com?x', null, 'a `?` is rejected (not truncated to example.com)'],
  ['example.com#x', null, 'a `#` is rejected (not truncated to example.com)'],
  ['example.com\\x', null, 'a backslash is rejected (not truncated to example.com)'],
  ['evil.com\uff0fexample.com', null, 'a fullwidth solidus is rejected'],
  ['0x7f.1', '127.0.0.1', '`0x7f.1` is 127.0.0.1'],
  ['2130706433', '127.0.0.1', '`2130706433` is 127.0.0.1'],
  ['017700000001', '127.0.0.1', '`017700000001` is 127.0.0.1'],
  ['127.1', '127.0.0.1', '`127.1` is 127.0.0.1'],
  ['0177.0.0.1', '127.0.0.1', 'octal `0177.0.0.1` is 127.0.0.1'],
  ['127.0.0.1.', '127.0.0.1', 'an IPv4 literal may have a trailing dot'],
  ['1.2.3.256', null, 'an out-of-range IPv4 is invalid'],
  ['foo.0x', null, 'a name ending in a number-like label is invalid'],
  ['[::1]', '::1', 'bracketed IPv6 loses its brackets'],
  ['::1', '::1', 'bare IPv6 is accepted'],
  ['[2001:DB8:0:0:0:0:0:1]', '2001:db8::1', 'IPv6 is compressed and lower-cased'],
  ['[::ffff:127.0.0.1]', '127.0.0.1', '`[::ffff:127.0.0.1]` is 127.0.0.1'],
  ['::FFFF:7F00:1', '127.0.0.1', '`::FFFF:7F00:1` is 127.0.0.1'],
  ['[::ffff:7f00:1]', '127.0.0.1', '`[::ffff:7f00:1]` is 127.0.0.1'],
  ['::8.8.8.8', '::808:808', 'IPv4-compatible `::8.8.8.8` is not mistaken for a mapped address'],
  ['::127.0.0.1', '::7f00:1', 'IPv4-compatible `::127.0.0.1` stays IPv6'],
  ['fe80::1%eth0', null, 'an IPv6 zone id is rejected'],
  ['[fe80::1%25eth0]', null, 'a percent-encoded zone id is rejected'],
  ['[::1', null, 'an unclosed bracket is invalid'],
  ['[::1]/x]', null, 'junk inside brackets is not truncated away'],
  ['::1]@evil.com', null, 'a stray bracket is not truncated away'],
  ['[example.com]', null, 'a bracketed name is invalid'],
  ['[127.0.0.1]', null, 'a bracketed IPv4 is invalid'],
  ['1:2:3', null, 'a malformed IPv6 is invalid'],
  ['[::1].', null, 'a trailing dot after IPv6 is invalid'],
]

for (const [input, expected, behaviour] of NORMALIZE) {
  t.test(`normalizeHost: ${JSON.stringify(input).slice(0, 40)} ${behaviour}`, async (t) => {
    t.equal(normalizeHost(input), expected)
  })
}

const LITERALS: ReadonlyArray<readonly [string, 'ipv4' | 'ipv6' | null]> = [
  ['127.0.0.1', 'ipv4'],
  ['::1', 'ipv6'],
  ['2001:db8::1', 'ipv6'],
  ['example.com', null],
  ['1.2.3.4.example', null],
  ['01.2.3.4', null],
  ['fe80::1%eth0', null],
]
for (const [host, kind] of LITERALS) {
  t.test(`isIpLiteral: \`${host}\` is ${String(kind)}`, async (t) => {
    t.equal(isIpLiteral(host), kind)
  })
}

const AUTHORITIES: ReadonlyArray<readonly [string, number | undefined, { host: string; port: number } | null, string]> =
  [
    ['example.com:443', undefined, { host: 'example.com', port: 443 }, 'name and port'],
    ['EXAMPLE.COM.:8443', undefined, { host: 'example.com', port: 8443 }, 'the host is normalised'],
    ['[::1]:443', undefined, { host: '::1', port: 443 }, '`[::1]:443` is IPv6 with a port'],
    ['[::ffff:127.0.0.1]:80', undefined, { host: '127.0.0.1', port: 80 }, 'mapped IPv6 becomes IPv4'],
    ['127.0.0.1:80', undefined, { host: '127.0.0.1', port: 80 }, 'IPv4 and port'],
    ['0x7f.1:80', undefined, { host: '127.0.0.1', port: 80 }, 'IPv4 spellings are canonicalised'],
    ['example.com', 80, { host: 'example.com', port: 80 }, 'no port uses the default'],
    ['[::1]', 443, { host: '::1', port: 443 }, 'bracketed IPv6 without a port uses the default'],
    ['example.com', undefined, null, 'no port and no default is rejected'],
    ['::1:443', undefined, null, 'bare IPv6 with a port is ambiguous'],
    ['::1', 443, null, 'bare IPv6 is refused even with a default port'],
    ['example.com:', 443, null, 'an empty port is rejected'],
    ['example.com:0', undefined, null, 'port 0 is rejected'],
    ['example.com:65536', undefined, null, 'port 65536 is rejected'],
    ['example.com:65535', undefined, { host: 'example.com', port: 65535 }, 'port 65535 is allowed'],
    ['example.com:+443', undefined, null, 'a signed port is rejected'],
    ['example.com:4 43', undefined, null, 'a port with a space is rejected'],
    ['example.com:0x1bb', undefined, null, 'a hex port is rejected'],
    ['example.com:000443', undefined, null, 'a port longer than five digits is rejected'],
    ['[::1]443', undefined, null, 'junk after the bracket is rejected'],
    ['[::1]:', undefined, null, 'bracketed IPv6 with an empty port is rejected'],
    ['[::1:443', undefined, null, 'an unclosed bracket is rejected'],
    ['user@example.com:443', undefined, null, 'userinfo is rejected'],
    ['a:b:c', undefined, null, 'two colons in a name are rejected'],
    [':443', undefined, null, 'an empty host is rejected'],
    ['', 443, null, 'empty input is rejected'],
    ['example.com', 0, null, 'an invalid default port is rejected'],
  ]
for (const [text, def, expected, behaviour] of AUTHORITIES) {
  t.test(`parseAuthority: \`${text}\` — ${behaviour}`, async (t) => {
    t.same(parseAuthority(text, def), expected)
  })
}

t.test('parseAuthority remembers answers per default port, and the memo stays bounded', async (t) => {
  // Asked again (the memo), the answers are the same, whatever was asked in between.
  for (let round = 0; round < 2; round++)
    for (const [text, def, expected] of AUTHORITIES) t.same(parseAuthority(text, def), expected, `${text} ${def} again`)
  // The same text under another default port is another question.
  t.same(parseAuthority('example.com', 80), { host: 'example.com', port: 80 })
  t.same(parseAuthority('example.com', 443), { host: 'example.com', port: 443 })
  t.equal(parseAuthority('example.com', undefined), null)
  // Answers are shared, so they cannot be changed by whoever holds one.
  t.ok(Object.isFrozen(parseAuthority('example.com', 80)))
  // A flood of distinct names empties the memo rather than growing it; earlier answers still hold.
  for (let i = 0; i < 10_000; i++) parseAuthority(`h${i}.example.com:443`)
  t.same(parseAuthority('h1.example.com:443'), { host: 'h1.example.com', port: 443 })
  t.equal(parseAuthority('example.com:4 43'), null)
})

t.test('formatAuthority brackets IPv6 only', async (t) => {
  t.equal(formatAuthority('::1', 443), '[::1]:443')
  t.equal(formatAuthority('example.com', 80), 'example.com:80')
  t.equal(formatAuthority('127.0.0.1', 80), '127.0.0.1:80')
})

t.test('toUnicodeHost shows the U-label and leaves IPs alone', async (t) => {
  t.equal(toUnicodeHost('xn--bcher-kva.de'), 'bücher.de')
  t.equal(toUnicodeHost('example.com'), 'example.com')
  t.equal(toUnicodeHost('::1'), '::1')
})

const CIDRS: ReadonlyArray<readonly [string, { text: string; kind: string; prefix: number } | null, string]> = [
  ['10.0.0.0/8', { text: '10.0.0.0/8', kind: 'ipv4', prefix: 8 }, 'an IPv4 network'],
  ['10.1.2.3/8', { text: '10.0.0.0/8', kind: 'ipv4', prefix: 8 }, 'host bits are masked off'],
  ['127.0.0.2', { text: '127.0.0.2/32', kind: 'ipv4', prefix: 32 }, 'a bare IPv4 is /32'],
  ['0.0.0.0/0', { text: '0.0.0.0/0', kind: 'ipv4', prefix: 0 }, '/0 is allowed'],
  ['10.0.0.0/33', null, '/33 is rejected'],
  ['10.0.0.0/', null, 'an empty prefix is rejected'],
  ['10.0.0.0/08x', null, 'a non-numeric prefix is rejected'],
  ['10.0.0.0/8/8', null, 'two slashes are rejected'],
  ['example.com/8', null, 'a name is rejected'],
  ['fd00::/8', { text: 'fd00::/8', kind: 'ipv6', prefix: 8 }, 'an IPv6 network'],
  ['FD00::1', { text: 'fd00::1/128', kind: 'ipv6', prefix: 128 }, 'a bare IPv6 is /128'],
  ['2001:db8::/129', null, '/129 is rejected'],
  ['::ffff:10.0.0.0/104', { text: '10.0.0.0/8', kind: 'ipv4', prefix: 8 }, 'a mapped network becomes IPv4'],
  ['::ffff:0:0/64', { text: '::/64', kind: 'ipv6', prefix: 64 }, 'a network wider than the mapped range stays IPv6'],
  ['fe80::/10%eth0', null, 'a zone id is rejected'],
  ['::1]/x', null, 'junk after an IPv6 address is rejected'],
  ['::10.0.0.0/104', { text: '::a00:0/104', kind: 'ipv6', prefix: 104 }, 'an IPv4-compatible network stays IPv6'],
]
for (const [text, expected, behaviour] of CIDRS) {
  t.test(`parseCidr: \`${text}\` — ${behaviour}`, async (t) => {
    const c = parseCidr(text)
    if (expected === null) t.equal(c, null)
    else t.match(c, expected)
  })
}

const CONTAINS: ReadonlyArray<readonly [string, string, boolean]> = [
  ['10.0.0.0/8', '10.255.1.2', true],
  ['10.0.0.0/8', '11.0.0.1', false],
  ['172.16.0.0/12', '172.31.255.255', true],
  ['172.16.0.0/12', '172.32.0.0', false],
  ['127.0.0.2', '127.0.0.2', true],
  ['127.0.0.2', '127.0.0.3', false],
  ['0.0.0.0/0', '8.8.8.8', true],
  ['0.0.0.0/0', '::1', false],
  ['::/0', '127.0.0.1', false],
  ['fd00::/8', 'fd12:3456::1', true],
  ['fd00::/8', 'fe80::1', false],
  ['2001:db8::/33', '2001:db8:7fff::1', true],
  ['2001:db8::/33', '2001:db8:8000::1', false],
  ['::ffff:10.0.0.0/104', '10.1.1.1', true],
  ['10.0.0.0/8', '::ffff:10.1.1.1', true],
  ['10.0.0.0/8', 'example.com', false],
  ['10.0.0.0/8', '0x0a.1', false],
  ['10.0.0.0/8', '::10.1.1.1', false],
  ['::ffff:0:0/64', '::ffff:a01:101', false], // the mapped address is compared as IPv4
]
for (const [cidr, ip, expected] of CONTAINS) {
  t.test(`cidrContains: \`${cidr}\` ${expected ? 'contains' : 'does not contain'} \`${ip}\``, async (t) => {
    const c = parseCidr(cidr)
    if (c === null) throw new Error(`bad fixture ${cidr}`)
    t.equal(cidrContains(c, ip), expected)
  })
}
