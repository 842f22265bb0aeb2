import t from 'tap'
import { matchPathPattern, parsePathPattern } from '../../../src/policy/path-pattern.js'

const MATCH: ReadonlyArray<readonly [pattern: string, target: string, expected: boolean, behaviour: string]> = [
  ['/a/b', '/a/b', true, 'a literal path matches itself'],
  ['/a/b', '/a/b/', false, 'a literal path does not match with a trailing slash'],
  ['/a/b', '/a/bc', false, 'a literal path is not a prefix'],
  ['/a/*', '/a/x', true, '`*` matches one segment'],
  ['/a/*', '/a/x/y', false, '`*` does not cross a slash'],
  ['/a/*', '/a/', true, '`*` may match an empty segment'],
  ['/a/lib-*', '/a/lib-core', true, '`*` matches within a segment'],
  ['/a/lib-*', '/a/core', false, '`*` keeps the literal part of the segment'],
  ['/a/**', '/a/x/y/z', true, '`**` matches across segments'],
  ['/a/**', '/a/', true, 'a trailing `**` matches an empty rest'],
  ['/a/**', '/a', false, 'a trailing `/**` does not match the bare parent'],
  ['/a/**/z', '/a/z', true, 'an inner `**` matches zero segments'],
  ['/a/**/z', '/a/x/y/z', true, 'an inner `**` matches several segments'],
  ['/a/**/z', '/a/x/y', false, 'an inner `**` still needs what follows it'],
  ['/a.b/c', '/axb/c', false, 'a dot is literal, not a regex wildcard'],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack',
    true,
    'a required query parameter matches',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?x=1&service=git-upload-pack',
    true,
    'a required parameter may be among others',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-receive-pack',
    false,
    'a different parameter value does not match',
  ],
  ['/r/info/refs?service=git-upload-pack', '/r/info/refs', false, 'a missing required parameter does not match'],
  ['/r/info/refs', '/r/info/refs?service=git-receive-pack', true, 'a pattern without a query accepts any query'],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&service=git-receive-pack',
    false,
    'a repeated required key with another value does not match (git takes the last)',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-receive-pack&service=git-upload-pack',
    false,
    'nor with the other value first',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&servic%65=git-receive-pack',
    false,
    'keys are compared percent-decoded',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git%2Dupload-pack',
    true,
    'values are compared percent-decoded',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack;service=git-receive-pack',
    false,
    'a `;` some servers split on cannot hide a second value',
  ],
  ['/r/info/refs?service=git-upload-pack', '/r/info/refs?service', false, 'a key without a value is not the value'],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&x=%zz',
    false,
    'a query that does not decode does not match',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&service=git-upload-pack',
    true,
    'the same value twice is still that value',
  ],
]

for (const [pattern, target, expected, behaviour] of MATCH) {
  t.test(behaviour, async (t) => {
    const parsed = parsePathPattern(pattern)
    t.ok(parsed.ok)
    const q = target.indexOf('?')
    const path = q < 0 ? target : target.slice(0, q)
    const query = q < 0 ? '' : target.slice(q + 1)
    if (parsed.ok) t.equal(matchPathPattern(parsed.pattern, path, query), expected)
  })
}

const REJECT: ReadonlyArray<readonly [pattern: string, hint: RegExp, behaviour: string]> = [
  ['a/b', /starts with/, 'a pattern must start with a slash'],
  ['/a/../b', /use '\/b'/, 'dot segments suggest the normalised path'],
  ['/%7euser', /use '\/~user'/, 'an encoded unreserved character suggests the decoded one'],
  ['/a/**b', /whole segment/, '`**` inside a segment is rejected'],
  ['/a?', /empty query/, 'an empty query parameter is rejected'],
  ['/a b', /not a valid path/, 'a raw space is rejected'],
]

for (const [pattern, hint, behaviour] of REJECT) {
  t.test(behaviour, async (t) => {
    const parsed = parsePathPattern(pattern)
    t.notOk(parsed.ok)
    if (!parsed.ok) t.match(parsed.message, hint)
  })
}
