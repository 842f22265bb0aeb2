import t from 'tap'
import { formatHostPattern, matchHostPattern, parseHostPattern } from '../../../src/policy/host-pattern.js'

const MATCH: ReadonlyArray<readonly [pattern: string, host: string, expected: boolean, behaviour: string]> = [
  ['example.com', 'example.com', true, 'an exact name matches itself'],
  ['example.com', 'www.example.com', false, 'an exact name does not match a subdomain'],
  ['*.example.com', 'example.com', false, '`*.example.com` does not match the apex'],
  ['*.example.com', 'a.example.com', true, '`*.example.com` matches one label deeper'],
  ['*.example.com', 'a.b.c.example.com', true, '`*.example.com` matches any depth'],
  ['*.example.com', 'badexample.com', false, '`*.example.com` does not match a name merely ending in it'],
  ['*.com', 'example.com', true, 'a single-label suffix wildcard is allowed and matches'],
  ['10.0.0.0/8', '10.2.3.4', true, 'a CIDR matches an address inside it'],
  ['10.0.0.0/8', '11.0.0.1', false, 'a CIDR does not match an address outside it'],
  ['10.0.0.0/8', '10.example.com', false, 'a CIDR never matches a name'],
  ['192.0.2.7', '192.0.2.7', true, 'a single IP matches itself'],
  ['2001:db8::/32', '2001:db8::1', true, 'an IPv6 CIDR matches'],
  ['2001:db8::/32', '10.0.0.1', false, 'an IPv6 CIDR never matches IPv4'],
  ['*.xn--bcher-kva.de', 'shop.xn--bcher-kva.de', true, 'an A-label wildcard matches the normalised host'],
]

for (const [pattern, host, expected, behaviour] of MATCH) {
  t.test(behaviour, async (t) => {
    const parsed = parseHostPattern(pattern)
    t.ok(parsed.ok)
    if (parsed.ok) t.equal(matchHostPattern(parsed.pattern, host), expected)
  })
}

const REJECT: ReadonlyArray<readonly [pattern: string, hint: RegExp, behaviour: string]> = [
  ['*', /every host/, '`*` is rejected as match-everything'],
  ['*.', /every host/, '`*.` is rejected as match-everything'],
  ['', /every host/, 'an empty pattern is rejected'],
  ['*.Bücher.de', /use '\*\.xn--bcher-kva\.de'/, 'a Unicode wildcard suggests its A-label'],
  ['Example.COM', /use 'example\.com'/, 'upper case suggests lower case'],
  ['example.com.', /use 'example\.com'/, 'a trailing dot suggests the name without it'],
  ['*.example.com.', /use '\*\.example\.com'/, 'a wildcard with a trailing dot suggests the name without it'],
  ['0x7f.1', /use '127\.0\.0\.1'/, 'a legacy IPv4 spelling suggests the dotted quad'],
  ['[::1]', /use '::1'/, 'a bracketed IPv6 literal suggests the bare form'],
  ['foo*.example.com', /whole first label/, 'a partial-label wildcard is rejected'],
  ['a.*.example.com', /whole first label/, 'a wildcard in the middle is rejected'],
  ['*.10.0.0', /not IP|not a valid/, 'a wildcard over an IP is rejected'],
  ['10.0.0.0/33', /CIDR/, 'a bad CIDR prefix is rejected'],
  ['exa mple.com', /not a valid host/, 'a space in a name is rejected'],
]

for (const [pattern, hint, behaviour] of REJECT) {
  t.test(behaviour, async (t) => {
    const parsed = parseHostPattern(pattern)
    t.notOk(parsed.ok)
    if (!parsed.ok) t.match(parsed.message, hint)
  })
}

t.test('a /32 CIDR is compiled as an exact IP', async (t) => {
  t.matchOnly(parseHostPattern('10.1.2.3/32'), { ok: true, pattern: { kind: 'exact', host: '10.1.2.3' } })
})

t.test('patterns format back to their canonical text', async (t) => {
  for (const text of ['example.com', '*.example.com', '10.0.0.0/8']) {
    const parsed = parseHostPattern(text)
    if (parsed.ok) t.equal(formatHostPattern(parsed.pattern), text)
  }
})
