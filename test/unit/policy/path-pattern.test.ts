import t, { type Test } from 'tap'
import {
  MAX_MATCHED_PATH_BYTES,
  matchPathPattern,
  matchPathPatternCounted,
  parsePathPattern,
  type PathPattern,
} from '../../../src/policy/path-pattern.js'

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
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&+service=git-receive-pack',
    false,
    'a name a server folds into it (PHP: leading spaces dropped, last wins) with another value does not match',
  ],
  [
    '/r/info/refs?service=git-upload-pack',
    '/r/info/refs?service=git-upload-pack&SERVICE=git-receive-pack',
    false,
    'nor one in another case',
  ],
]

/** Does `pattern` match the request target `target` (path and query), as an allow or a deny rule's? */
function matchesTarget(t: Test, pattern: string, target: string, forDeny: boolean): boolean | null {
  const parsed = parsePathPattern(pattern)
  t.ok(parsed.ok)
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const query = q < 0 ? '' : target.slice(q + 1)
  return parsed.ok ? matchPathPattern(parsed.pattern, path, query, forDeny) : null
}

for (const [pattern, target, expected, behaviour] of MATCH) {
  t.test(behaviour, async (t) => {
    t.equal(matchesTarget(t, pattern, target, false), expected)
  })
}

// A deny rule's required query matches when some server could read it so: the opposite caution.
const DENY_MATCH: ReadonlyArray<readonly [target: string, expected: boolean, behaviour: string]> = [
  ['/r/info/refs?service=git-receive-pack', true, 'deny: the value itself'],
  ['/r/info/refs?service=git-upload-pack&service=git-receive-pack', true, 'deny: a repeated key, git reading the last'],
  [
    '/r/info/refs?service=git-receive-pack&service=git-upload-pack',
    true,
    'deny: a repeated key, a server reading the first',
  ],
  ['/r/info/refs?service=git-receive-pack&%zz', true, 'deny: a parameter that does not decode is passed over'],
  ['/r/info/refs?a=1;service=git-receive-pack', true, 'deny: servers that also split on ;'],
  ['/r/info/refs?servic%65=git%2Dreceive-pack', true, 'deny: keys and values decoded'],
  ['/r/info/refs?service=git-receive-pack%ff', false, 'deny: a value with more in it is another value'],
  ['/r/info/refs?servic%65%ff=git-receive-pack', false, 'deny: a key with more in it is another key'],
  ['/r/info/refs?x=1&servic%65%ff', false, 'deny: a run that is not UTF-8 still decodes only as far as it goes'],
  ['/r/info/refs?service=git-upload-pack', false, 'deny: another value'],
  ['/r/info/refs?SERVICE=git-receive-pack', true, 'deny: a name in another case (ASP.NET folds it)'],
  ['/r/info/refs?+service=git-receive-pack', true, 'deny: a name after spaces (PHP drops them)'],
  ['/r/info/refs?service=git%252Dreceive-pack', true, 'deny: a value a server decodes twice'],
  ['/r/info/refs', false, 'deny: no query'],
]

for (const [target, expected, behaviour] of DENY_MATCH) {
  t.test(behaviour, async (t) => {
    t.equal(matchesTarget(t, '/r/info/refs?service=git-receive-pack', target, true), expected)
  })
}

// A deny rule's path matches as some server could read it: in either case, and a trailing `/**`
// covering the bare prefix. Allow patterns keep matching as written.
const DENY_PATHS: ReadonlyArray<
  readonly [pattern: string, target: string, deny: boolean, allow: boolean, behaviour: string]
> = [
  ['/p/secret/**', '/p/secret', true, false, 'a trailing `/**` covers the bare prefix'],
  ['/p/secret/**', '/p/secret/', true, true, 'and the prefix with its slash'],
  ['/p/secret/**', '/p/secretive', false, false, 'but not a longer segment'],
  ['/p/secret/**', '/p', false, false, 'nor the parent'],
  ['/p/secret/**', '/p/SECRET/a', true, false, 'letters in another case'],
  ['/p/secret/**', '/P/Secret', true, false, 'another case and the bare prefix'],
  ['/p/Secret/**', '/p/secret/a', true, false, 'a pattern with capitals, a path without'],
  ['/p/*/secret/**', '/p/x/secret', true, false, 'a glob: the bare prefix'],
  ['/p/*/secret/**', '/p/X/SECRET/y', true, false, 'a glob: another case'],
  ['/p/*/secret/**', '/p/x/secrets', false, false, 'a glob: not a longer segment'],
  ['/p/**/secret/**', '/p/a/b/secret', true, false, 'inner and trailing `**`: the bare prefix'],
  ['/p/**/secret/**', '/p/a/b/Secret/c', true, false, 'inner and trailing `**`: another case'],
  ['/p/**/secret/**', '/p/a/b', false, false, 'inner and trailing `**`: still needs what lies between'],
  ['/p/secret', '/p/SECRET', true, false, 'a literal in another case'],
  ['/p/secret', '/p/secret/', false, false, 'a literal is still not a prefix'],
  ['/**', '/anything', true, true, 'the root'],
]

for (const [pattern, target, deny, allow, behaviour] of DENY_PATHS) {
  t.test(`deny: ${behaviour}`, async (t) => {
    t.equal(matchesTarget(t, pattern, target, true), deny, 'as a deny rule')
    t.equal(matchesTarget(t, pattern, target, false), allow, 'as an allow rule (as written)')
  })
}

t.test('a pattern already in lower case has no lower-cased twin; one with capitals has one', async (t) => {
  const lower = parsePathPattern('/p/secret/**')
  const upper = parsePathPattern('/p/Secret/**')
  t.equal(lower.ok && lower.pattern.folded, null)
  t.match(upper.ok && upper.pattern.folded, { prefix: '/p/secret/', text: '/p/Secret/**' })
})

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

function compile(text: string): PathPattern {
  const parsed = parsePathPattern(text)
  if (!parsed.ok) throw new Error(parsed.message)
  return parsed.pattern
}

const SEGMENTS: ReadonlyArray<readonly [pattern: string, path: string, expected: boolean, behaviour: string]> = [
  ['/a/**/*', '/a/x/', true, 'an inner `**` then `*` matches a trailing empty segment'],
  ['/**/b', '/b', true, 'a leading `**` matches zero segments'],
  ['/**/b', '/x/y/b', true, 'a leading `**` matches several segments'],
  ['/**/b', 'b', false, 'a path must start with a slash'],
  ['/a/**/z', '/a//z', false, 'an inner `**` does not match an empty segment'],
  ['/a/**/**', '/a/x', true, 'an inner `**` before a trailing one matches zero segments'],
  ['/a/**/**', '/a', false, 'a trailing `/**` still needs its slash after an inner `**`'],
  ['/*/**', '/x/', true, 'a trailing `/**` after `*` matches an empty rest'],
  ['/*/**', '/x', false, 'a trailing `/**` after `*` does not match the bare parent'],
  ['/a/*/', '/a/x/', true, 'a pattern may end with a slash'],
  ['/a/*/', '/a/x', false, 'a trailing slash in the pattern is required in the path'],
  ['/*-*.*.*.tgz', '/lib-1.2.3.tgz', true, 'several `*` in one segment match in order'],
  ['/*-*.*.*.tgz', '/lib-1.2.tgz', false, 'every literal piece between stars is required'],
  ['/ab*ba', '/aba', false, 'a segment head and tail may not overlap'],
  ['/ab*ba', '/abba', true, 'a segment head and tail may meet'],
  ['/*aab*', '/aaab', true, 'a piece is found after a partial match of itself (KMP fallback)'],
  ['/*abab*', '/abaabab', true, 'a piece is found after a failed overlapping prefix'],
  ['/*abab*', '/ababa', true, 'a piece may end anywhere before the tail'],
  ['/x*a*a', '/xa', false, 'pieces may not share characters'],
  ['/a/**/b/*', '/a/b/b/b', true, 'an inner `**` tries every split (not only the first `b`)'],
]

for (const [pattern, path, expected, behaviour] of SEGMENTS) {
  t.test(behaviour, async (t) => {
    t.equal(matchPathPattern(compile(pattern), path, ''), expected)
    t.equal(matchPathPatternCounted(compile(pattern), path, '').matched, expected)
  })
}

t.test('the longest matched path is 8 KiB', async (t) => {
  t.equal(MAX_MATCHED_PATH_BYTES, 8192)
})

/** The old backtracking-RegExp semantics: the reference, run only on short inputs. */
function referenceMatch(pattern: string, path: string): boolean {
  const segments = pattern.split('/')
  let src = ''
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] ?? ''
    if (seg === '**') src += i === segments.length - 1 ? '/.*' : '(?:/[^/]+)*'
    else src += `/${seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}`
  }
  return new RegExp(`^${src}$`).test(path)
}

/** steps ≤ BOUND × (path length + 1) × (pattern length + 1): linear in the path for a given pattern. */
const BOUND = 4

function withinBound(pattern: string, path: string, steps: number): boolean {
  return steps <= BOUND * (path.length + 1) * (pattern.length + 1)
}

const KIB = 1024
const ADVERSARIAL: ReadonlyArray<
  readonly [pattern: string, build: (bytes: number) => string, expected: boolean, perByte: number, behaviour: string]
> = [
  ['/pkg/*-*.*.*.tgz', (n) => `/pkg/${'-.'.repeat(n / 2)}`, false, 4, 'many stars against a run of `-.` (issue 11)'],
  ['/pkg/*-*.*.*.tgz', (n) => `/pkg/${'-.'.repeat(n / 2)}x.tgz`, true, 4, 'many stars that do match at the end'],
  ['/pkg/*-*.*.*.tgz', (n) => `/pkg/${'.'.repeat(n)}.tgz`, false, 4, 'many stars whose pieces are missing'],
  ['/**/a/**/a/**/b', (n) => '/a'.repeat(n / 2), false, 8, 'inner `**` against thousands of `/a` (issue 11)'],
  ['/**/a/**/a/**/b', (n) => `${'/a'.repeat(n / 2)}/b`, true, 8, 'inner `**` that does match at the end'],
  ['/**/a/**/a/**/b', (n) => `${'/x'.repeat(n / 2)}/a/b`, false, 8, 'inner `**` that fails only in the middle'],
  ['/**/a/**', (n) => '/x'.repeat(n / 2), false, 8, 'an inner `**` before a trailing one'],
  ['/**/**/**/**/x', (n) => `${'/y'.repeat(n / 2)}/x`, true, 8, 'consecutive inner `**`'],
  ['/**/*-*.*.*.tgz/**/z', (n) => `${'/-.-.-.-.-.'.repeat(n / 10)}/z`, false, 8, 'stars between inner `**`'],
  ['/*a*a*a*a*b', (n) => `/${'a'.repeat(n)}`, false, 4, 'one long segment against repeated pieces'],
  ['/*aaaaaaab*', (n) => `/${'a'.repeat(n)}`, false, 4, 'a long piece against its own near-misses'],
]

for (const [pattern, build, expected, perByte, behaviour] of ADVERSARIAL) {
  t.test(`linear: ${behaviour}`, async (t) => {
    const compiled = compile(pattern)
    const small = build(4 * KIB)
    const large = build(8 * KIB)
    const a = matchPathPatternCounted(compiled, small, '')
    const b = matchPathPatternCounted(compiled, large, '')
    t.equal(a.matched, expected)
    t.equal(b.matched, expected)
    t.equal(matchPathPattern(compiled, large, ''), expected)
    t.ok(withinBound(pattern, large, b.steps), `steps ${b.steps} within the general bound`)
    // For a fixed pattern: a few steps per path byte, and twice the path costs at most about twice the steps.
    t.ok(b.steps <= perByte * pattern.length * (large.length + 1), `steps ${b.steps} linear in ${large.length} bytes`)
    t.ok(b.steps <= 2.1 * a.steps + 10, `doubling the path: ${a.steps} → ${b.steps} steps`)
  })
}

// The bounds above hold trivially if nothing is counted: these cases must visit the whole path.
const FULL_SCANS: ReadonlyArray<readonly [pattern: string, path: string, behaviour: string]> = [
  ['/**/a/**/a/**/b', `${'/x'.repeat(4 * KIB)}/a/b`, 'a pass over every path segment'],
  ['/*a*a*a*a*b', `/${'a'.repeat(8 * KIB)}b`, 'a scan of one long segment'],
  ['/*/*', `/${'a'.repeat(8 * KIB)}/b`, 'a walk past a long segment'],
  ['/x/**/*/b', `/x/c/${'a'.repeat(8 * KIB)}/b`, 'a walk back past a long segment'],
]

for (const [pattern, path, behaviour] of FULL_SCANS) {
  t.test(`the step counter counts ${behaviour}`, async (t) => {
    const { steps } = matchPathPatternCounted(compile(pattern), path, '')
    t.ok(steps >= 8 * KIB, `${steps} steps for ${path.length} bytes`)
  })
}

t.test('a path longer than MAX_MATCHED_PATH_BYTES is still matched correctly within the bound', async (t) => {
  const pattern = '/**/a/**/a/**/b'
  const compiled = compile(pattern)
  const hit = `${'/x'.repeat(8 * MAX_MATCHED_PATH_BYTES)}/a/y/a/b`
  const miss = `${'/x'.repeat(8 * MAX_MATCHED_PATH_BYTES)}/a/y/b`
  for (const [path, expected] of [
    [hit, true],
    [miss, false],
    ['/x/a/y/a/b', true], // after the long paths: the shared scratch arrays are still sound
  ] as const) {
    const { matched, steps } = matchPathPatternCounted(compiled, path, '')
    t.equal(matched, expected)
    t.ok(steps <= 8 * pattern.length * (path.length + 1), `${steps} steps for ${path.length} bytes`)
  }
})

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function createRandom(seed: number): (n: number) => number {
  let s = seed >>> 0
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return (((x ^ (x >>> 14)) >>> 0) / 4294967296) * n
  }
}

const PATTERN_SEGMENTS = ['a', 'b', 'ab', '-', '.a', '*', 'a*', '*a', '*a*', 'a*b', '*ab*a*', '*-*.*', '**', '**', '']
const PATH_CHARS = ['/', '/', 'a', 'a', 'b', '-', '.']

function randomPattern(random: (n: number) => number): string {
  const count = 1 + Math.floor(random(6))
  const segs: string[] = []
  for (let i = 0; i < count; i++) segs.push(PATTERN_SEGMENTS[Math.floor(random(PATTERN_SEGMENTS.length))] ?? '')
  return `/${segs.join('/')}`
}

function randomPath(random: (n: number) => number): string {
  const length = Math.floor(random(24))
  let path = random(10) < 9 ? '/' : ''
  for (let i = 0; i < length; i++) path += PATH_CHARS[Math.floor(random(PATH_CHARS.length))] ?? ''
  return path
}

const FILL = ['', 'a', 'b', '-', '.', 'ab', 'a-b.a']

/** A path the pattern should match (stars and `**` filled in at random), then perhaps one character changed. */
function pathFromPattern(random: (n: number) => number, pattern: string): string {
  const pick = (): string => FILL[Math.floor(random(FILL.length))] ?? ''
  const segs = pattern.slice(1).split('/')
  let path = ''
  segs.forEach((seg, i) => {
    if (seg !== '**') path += `/${seg.replace(/\*/g, pick)}`
    else if (i === segs.length - 1) path += `/${pick()}`
    else for (let k = Math.floor(random(3)); k > 0; k--) path += `/${pick() || 'x'}`
  })
  if (random(2) < 1 || path.length === 0) return path
  const at = Math.floor(random(path.length))
  return path.slice(0, at) + (PATH_CHARS[Math.floor(random(PATH_CHARS.length))] ?? '') + path.slice(at + 1)
}

t.test('fuzz: the matcher agrees with the regex reference and stays within the step bound', async (t) => {
  const random = createRandom(0x11c0ffee)
  const CASES = 20_000
  let compared = 0
  let matched = 0
  const failures: string[] = []
  for (let i = 0; i < CASES && failures.length < 10; i++) {
    const pattern = randomPattern(random)
    const parsed = parsePathPattern(pattern)
    if (!parsed.ok) continue // not in normal form (`//`, `.a/..`): the config would refuse it too
    for (let k = 0; k < 4; k++) {
      const path = k < 2 ? randomPath(random) : pathFromPattern(random, pattern)
      const got = matchPathPatternCounted(parsed.pattern, path, '')
      const want = referenceMatch(pattern, path)
      compared++
      if (got.matched) matched++
      if (got.matched !== want) failures.push(`${pattern} on ${path}: got ${got.matched}, reference ${want}`)
      if (!withinBound(pattern, path, got.steps)) failures.push(`${pattern} on ${path}: ${got.steps} steps`)
    }
  }
  t.same(failures, [])
  // The generator must exercise both answers, or agreement would prove little.
  t.ok(compared > CASES, `${compared} comparisons`)
  t.ok(matched > compared / 50, `${matched} matches among ${compared}`)
})
