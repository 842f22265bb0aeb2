import t from 'tap'
import { decodedReading, normalizePath, splitTarget } from '../../../src/net/url-path.js'

const SPLITS: ReadonlyArray<readonly [string, { path: string; query: string }, string]> = [
  ['/a/b', { path: '/a/b', query: '' }, 'no query'],
  ['/a?x=1', { path: '/a', query: 'x=1' }, 'query without the `?`'],
  ['/a?x=1?y=2', { path: '/a', query: 'x=1?y=2' }, 'splits at the first `?`'],
  ['/a?', { path: '/a', query: '' }, 'an empty query'],
  ['/a#frag', { path: '/a', query: '' }, 'the fragment is dropped'],
  ['/a?x=1#frag', { path: '/a', query: 'x=1' }, 'the fragment after a query is dropped'],
  ['/a#frag?x=1', { path: '/a', query: '' }, 'a `?` inside the fragment is not a query'],
  [
    '/info/refs?service=git-upload-pack',
    { path: '/info/refs', query: 'service=git-upload-pack' },
    'git smart-HTTP discovery',
  ],
]
for (const [target, expected, behaviour] of SPLITS) {
  t.test(`splitTarget: \`${target}\` — ${behaviour}`, async (t) => {
    t.same(splitTarget(target), expected)
  })
}

const PATHS: ReadonlyArray<readonly [string, string | null, string]> = [
  ['/', '/', 'the root stays'],
  ['/a/b', '/a/b', 'a plain path stays'],
  ['/a/b/', '/a/b/', 'a trailing slash is kept'],
  ['/%7Euser', '/~user', '`%7E` decodes to `~`'],
  ['/%61%62%63', '/abc', 'unreserved letters decode'],
  ['/%2D%2E%5F%30', '/-._0', 'unreserved marks and digits decode'],
  ['/a%2fb', '/a%2Fb', '`%2f` stays encoded with upper-case hex'],
  ['/a%2Fb/..', '/', 'an encoded slash is not a separator'],
  ['/a%20b', '/a%20b', 'an encoded space stays encoded'],
  ['/%c3%a9', '/%C3%A9', 'escape hex is upper-cased'],
  ['/é', '/%C3%A9', 'raw non-ASCII is UTF-8 percent-encoded'],
  ['/\ud83d\ude00', '/%F0%9F%98%80', 'an astral character is encoded as one code point'],
  ['/\ud83d', null, 'a lone surrogate is rejected'],
  ['/%zz', null, '`%zz` is rejected'],
  ['/files/a.exe%00.txt', null, 'an encoded NUL is rejected (C servers end the path there)'],
  ['/%4', null, 'a truncated escape is rejected'],
  ['/a%', null, 'a bare `%` is rejected'],
  ['/a\u0000b', null, 'NUL is rejected'],
  ['/a\tb', null, 'a tab is rejected'],
  ['/a b', null, 'a raw space is rejected'],
  ['/a\u007fb', null, 'DEL is rejected'],
  ['/a\\..\\b', null, 'a backslash is rejected'],
  ['a/b', null, 'a path must start with `/`'],
  ['', null, 'empty is rejected'],
  ['*', null, 'asterisk-form is not a path'],
  ['//a///b', '/a/b', 'repeated slashes collapse'],
  ['/a/./b', '/a/b', '`.` segments are removed'],
  ['/a/../b', '/b', '`..` removes the previous segment'],
  ['/a/b/..', '/a/', '`..` at the end leaves a trailing slash'],
  ['/a/.', '/a/', '`.` at the end leaves a trailing slash'],
  ['/..', '/', '`..` cannot climb above the root'],
  ['/../../etc/passwd', '/etc/passwd', 'many `..` stop at the root'],
  ['/repos/acme/%2e%2e/evil', '/repos/evil', '`%2e%2e` counts as `..`'],
  ['/repos/acme/.%2E/evil', '/repos/evil', '`.%2E` counts as `..`'],
  ['/repos/acme/%2e/x', '/repos/acme/x', '`%2e` counts as `.`'],
  ['/repos/acme//..//evil', '/repos/evil', 'collapsing happens before `..` is applied'],
  ['/a/..;/b', null, '`..;` (Tomcat path parameter) is rejected'],
  ['/a/.;x/b', null, '`.;` is rejected'],
  ['/a/b..c/...', '/a/b..c/...', 'dots inside a segment are ordinary'],
  ['/a;b=c', '/a;b=c', 'path parameters elsewhere are kept'],
]
for (const [raw, expected, behaviour] of PATHS) {
  t.test(`normalizePath: ${JSON.stringify(raw)} — ${behaviour}`, async (t) => {
    t.equal(normalizePath(raw), expected)
  })
}

const DECODED_READINGS: ReadonlyArray<readonly [string, string | null, string]> = [
  ['/a/b', '/a/b', 'nothing to read differently'],
  ['/public/..%2Fsecret', '/secret', 'an encoded slash is a separator to a decoding server'],
  ['/public/..%5Csecret', '/secret', 'so is an encoded backslash'],
  ['/admin%2Fusers', '/admin/users', 'an encoded slash inside a segment splits it'],
  ['/admin;x/users', '/admin/users', 'a ;param is dropped from its segment'],
  ['/a;jsessionid=1', '/a', 'a trailing ;param is dropped'],
  ['/a%2F..;b', null, 'a decoded `..;` is refused as the written one is'],
  ['/a%2F%2Fb', '/a/b', 'decoded empty segments collapse'],
  ['/public/secret%3B/x', '/public/secret/x', 'an encoded `;` starts a param to a server that decodes first'],
  ['/a%3Bb%2F..%2F..%2Fadmin', '/admin', 'and the rest of its segment goes with it'],
  ['/public/%252E%252E/secret', '/secret', 'an escape spelled twice is read by a server that decodes twice'],
  ['/public/..%252Fsecret', '/secret', 'an encoded slash spelled twice too'],
  ['/public/%252e%252e/secret', '/secret', 'in lower case as well (normalizePath leaves the hex after %25 as written)'],
  ['/files/100%25.txt', '/files/100%25.txt', 'a literal percent sign before no hex is left alone'],
  ['/files/100%25AB.txt', '/files/100%AB.txt', 'before hex, it reads as that escape (not malformed)'],
  ['/public/%C0%AE%C0%AE/admin', '/admin', 'overlong UTF-8 dots are dots to a decoder that does not check'],
  ['/public/..%C0%AFadmin', '/admin', 'an overlong slash is a separator to it'],
  ['/public/%E0%80%AE%E0%80%AE/admin', '/admin', 'three-byte overlong dots too'],
  ['/public/%F0%80%80%AE%F0%80%80%AE/admin', '/admin', 'four-byte ones'],
  ['/public/s%F0%80%81%A5cret/x', '/public/secret/x', 'an overlong letter is that letter'],
  ['/public/%F8%80%80%80%AE%FC%80%80%80%80%AE/admin', '/admin', 'five- and six-byte ones'],
  ['/a/%C1%9Cb', '/a/b', 'an overlong backslash is a separator'],
  ['/caf%C3%A9/x', '/caf%C3%A9/x', 'well-formed UTF-8 is left alone'],
  ['/l1/%C0%E9', '/l1/%C0%E9', 'a Latin-1 byte that starts no overlong sequence is left alone'],
]
for (const [path, expected, behaviour] of DECODED_READINGS) {
  t.test(`decodedReading: \`${path}\` — ${behaviour}`, async (t) => {
    t.equal(decodedReading(path), expected)
  })
}
