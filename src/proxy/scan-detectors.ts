/**
 * The `inspect_body` detectors, each anchored on a literal prefix. PURE.
 *
 * A detector names the literals its matches start with (found with `indexOf`, or, for the one
 * case-insensitive name, a regex that is only that literal) and checks a bounded number of
 * characters from there and the one before. No check reads further than `reach` from the match's
 * start, so a text costs one pass per literal plus a bounded amount per hit, whatever it holds (the
 * regexes these replace retried a 20–100-character run at every `sk-`). Detectors share a literal
 * where one is a prefix of several shapes (`IA`, `gh`, `sk-`), so the passes are few.
 *
 * Each shape is the issuer's documented token shape (prefix and length), so prose and hashes do not
 * trip it; the generic ones need context (`aws_secret_access_key=`, a PEM private-key header). Token
 * bodies are bounded on the left by a character that cannot continue them (not \b: `key_AKIA…`
 * glues a key to `_`), and need not end at a boundary (a longer run still starts with one).
 */

export interface Detector {
  readonly name: string
  /** Where matches are found: each literal with `indexOf`, a match starting `lead` characters before it. */
  readonly anchors: readonly Anchor[]
  /** Replaces `anchors` where the name is case-insensitive: a global regex of that literal alone. */
  readonly caseless?: RegExp
  /** The most characters any check reads from the match's first character (windows keep this much context). */
  readonly reach: number
  /**
   * A matcher over `text`: the end of the match starting at `start`, or -1. With `plusIsSpace`, `+`
   * reads as a space, as a form or query parser reads it (only detectors whose matches hold spaces care).
   */
  readonly open: (text: string, plusIsSpace: boolean) => (start: number) => number
  /** Whether `plusIsSpace` can change a match (`+` or a space is part of what the detector reads). */
  readonly readsPlus?: boolean
}

export interface Anchor {
  readonly literal: string
  readonly lead: number
}

const at0 = (...literals: string[]): Anchor[] => literals.map((literal) => ({ literal, lead: 0 }))

// Character classes as bits of one table over latin1; anything above U+00FF is in none of them.
const UPNUM = 1 // [A-Z0-9]
const ALNUM = 2 // [A-Za-z0-9]
const WORD = 4 // [A-Za-z0-9_]
const TOKEN = 8 // [A-Za-z0-9_-]
const B64 = 16 // [A-Za-z0-9/+]
const LOWER = 32 // [a-z]
const DIGIT = 64 // [0-9]
const SLACK = 128 // [A-Za-z0-9-]
const B64_NO_PLUS = 256 // [A-Za-z0-9/], the class when `+` is a space

const CLASSES = buildClasses()

function buildClasses(): Uint16Array {
  const table = new Uint16Array(256)
  const add = (chars: string, bits: number): void => {
    for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)]! |= bits
  }
  const upper = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
  const lower = upper.toLowerCase()
  const digits = '0123456789'
  add(upper + digits, UPNUM)
  add(upper + lower + digits, ALNUM | WORD | TOKEN | B64 | SLACK | B64_NO_PLUS)
  add(lower, LOWER)
  add(digits, DIGIT)
  add('_', WORD | TOKEN)
  add('-', TOKEN | SLACK)
  add('/', B64 | B64_NO_PLUS)
  add('+', B64)
  return table
}

function isIn(text: string, i: number, cls: number): boolean {
  if (i < 0 || i >= text.length) return false
  const c = text.charCodeAt(i)
  return c < 256 && (CLASSES[c]! & cls) !== 0
}

/** How many characters of `cls` start at `i`, counting no further than `max`. */
function runOf(text: string, i: number, cls: number, max: number): number {
  let n = 0
  while (n < max && isIn(text, i + n, cls)) n++
  return n
}

/** A token: its prefix, not glued on the left to a letter or digit, then `count` characters of `cls`. */
function token(name: string, prefix: string, cls: number, count: number): Detector {
  const n = prefix.length
  return {
    name,
    anchors: at0(prefix),
    reach: n + count,
    open: (text) => (start) =>
      text.startsWith(prefix, start) && !isIn(text, start - 1, ALNUM) && runOf(text, start + n, cls, count) === count
        ? start + n + count
        : -1,
  }
}

const PEM_KINDS = ['RSA', 'EC', 'DSA', 'OPENSSH', 'ENCRYPTED', 'PGP']

/** -----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?----- or PuTTY-User-Key-File-\d */
const privateKey: Detector = {
  name: 'private_key',
  anchors: at0('-----BEGIN', 'PuTTY-User-Key-File-'),
  reach: '-----BEGIN ENCRYPTED PRIVATE KEY BLOCK-----'.length,
  readsPlus: true,
  open: (text, plusIsSpace) => {
    const space = (i: number): boolean => text[i] === ' ' || (plusIsSpace && text[i] === '+')
    return (start) => {
      if (text.startsWith('PuTTY', start)) return isIn(text, start + 20, DIGIT) ? start + 21 : -1
      let i = start + 10
      if (!space(i++)) return -1
      const kind = PEM_KINDS.find((k) => text.startsWith(k, i) && space(i + k.length))
      if (kind !== undefined) i += kind.length + 1
      if (!text.startsWith('PRIVATE', i) || !space(i + 7) || !text.startsWith('KEY', i + 8)) return -1
      i += 11
      if (space(i) && text.startsWith('BLOCK-----', i + 1)) return i + 11
      return text.startsWith('-----', i) ? i + 5 : -1
    }
  },
}

/** (AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}, not part of a longer run of upper case and digits on either side. */
const awsAccessKeyId: Detector = {
  name: 'aws_access_key_id',
  // One pass for `IA` finds the first three.
  anchors: [
    { literal: 'IA', lead: 2 },
    { literal: 'ACCA', lead: 0 },
  ],
  reach: 21,
  open: (text) => (start) => {
    const ok =
      (text.startsWith('ACCA', start) || (text[start] === 'A' && 'KSB'.includes(text[start + 1] ?? '.'))) &&
      !isIn(text, start - 1, UPNUM) &&
      runOf(text, start + 4, UPNUM, 17) === 16
    return ok ? start + 20 : -1
  },
}

/** `\s` as a JavaScript regex reads it. */
function isSpace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) ||
    c === 32 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  )
}

/** (aws_?)?secret_?access_?key["']?\s{0,8}[:=]\s{0,8}["']?[A-Za-z0-9/+]{40}, case-insensitive, not followed by more of that class. */
const awsSecretAccessKey: Detector = {
  name: 'aws_secret_access_key',
  anchors: [],
  // The name in any case, `_` optional (`aws_secret_access_key`, `SecretAccessKey`, `SECRET_ACCESS_KEY`).
  caseless: /secret_?access_?key/gi,
  reach: 'secret_access_key'.length + 1 + 8 + 1 + 8 + 1 + 41,
  readsPlus: true,
  open: (text, plusIsSpace) => {
    const name = /secret_?access_?key/iy
    const space = (i: number): boolean =>
      i < text.length && (isSpace(text.charCodeAt(i)) || (plusIsSpace && text[i] === '+'))
    const quote = (i: number): number => (text[i] === '"' || text[i] === "'" ? i + 1 : i)
    // Past at most 8 spaces from `i`, or -1 when more follow.
    const spaces = (i: number): number => {
      let n = 0
      while (n <= 8 && space(i + n)) n++
      return n > 8 ? -1 : i + n
    }
    const b64 = plusIsSpace ? B64_NO_PLUS : B64
    return (start) => {
      name.lastIndex = start
      if (!name.test(text)) return -1
      let i = spaces(quote(name.lastIndex))
      if (i < 0 || (text[i] !== ':' && text[i] !== '=')) return -1
      i = spaces(i + 1)
      if (i < 0) return -1
      i = quote(i)
      return runOf(text, i, b64, 40) === 40 && !isIn(text, i + 40, b64) ? i + 40 : -1
    }
  },
}

/** gh[pousr]_[A-Za-z0-9]{36}: one pass for `gh`, the letter checked after. */
const githubToken: Detector = {
  name: 'github_token',
  anchors: at0('gh'),
  reach: 40,
  open: (text) => (start) =>
    'pousr'.includes(text[start + 2] ?? '.') &&
    text[start + 3] === '_' &&
    !isIn(text, start - 1, ALNUM) &&
    runOf(text, start + 4, ALNUM, 36) === 36
      ? start + 40
      : -1,
}

/** [rs]k_live_[0-9A-Za-z]{24}: one pass for `k_live_`. */
const stripeSecretKey: Detector = {
  name: 'stripe_secret_key',
  anchors: [{ literal: 'k_live_', lead: 1 }],
  reach: 32,
  open: (text) => (start) =>
    (text[start] === 'r' || text[start] === 's') &&
    text.startsWith('k_live_', start + 1) &&
    !isIn(text, start - 1, ALNUM) &&
    runOf(text, start + 8, ALNUM, 24) === 24
      ? start + 32
      : -1,
}

/** xox[abposr]-[A-Za-z0-9-]{10,250} */
const slackToken: Detector = {
  name: 'slack_token',
  anchors: at0('xox'),
  reach: 5 + 250,
  open: (text) => (start) => {
    if (isIn(text, start - 1, ALNUM) || !'abposr'.includes(text[start + 3] ?? '.') || text[start + 4] !== '-') return -1
    const n = runOf(text, start + 5, SLACK, 250)
    return n >= 10 ? start + 5 + n : -1
  },
}

/** sk-ant-[a-z]{1,10}\d{2}-[A-Za-z0-9_-]{80} */
const anthropicApiKey: Detector = {
  name: 'anthropic_api_key',
  anchors: at0('sk-'),
  reach: 7 + 10 + 3 + 80,
  open: (text) => (start) => {
    if (!text.startsWith('sk-ant-', start) || isIn(text, start - 1, ALNUM)) return -1
    const letters = runOf(text, start + 7, LOWER, 11)
    const i = start + 7 + letters
    if (letters < 1 || letters > 10 || runOf(text, i, DIGIT, 2) !== 2 || text[i + 2] !== '-') return -1
    return runOf(text, i + 3, TOKEN, 80) === 80 ? i + 83 : -1
  },
}

const OPENAI_KINDS = ['proj-', 'svcacct-', 'admin-']
const OPENAI_MARKER = 'T3BlbkFJ'

/**
 * sk-(proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,100}T3BlbkFJ[A-Za-z0-9_-]{20}, or
 * sk-(proj|svcacct|admin)-[A-Za-z0-9_-]{80}. The run after `sk-` is measured once per run (hits inside
 * a run already measured reuse it) and the markers are found once per text, so a text dense with
 * `sk-` costs no more than one without. A match ends where the run does (at most its longest form).
 */
const openaiApiKey: Detector = {
  name: 'openai_api_key',
  anchors: at0('sk-'),
  reach: 3 + 8 + 100 + 8 + 20,
  open: (text) => {
    let markers: number[] | null = null
    let runFrom = -1
    let runEnd = -1 // text[runFrom, runEnd) is all TOKEN; `runExact` when runEnd is where the run stops
    let runExact = false
    const runEndFrom = (i: number, limit: number): number => {
      if (i < runFrom || i > runEnd) {
        runFrom = i
        runEnd = i
        runExact = false
      }
      if (!runExact) {
        while (runEnd < limit && isIn(text, runEnd, TOKEN)) runEnd++
        runExact = runEnd < limit
      }
      return Math.min(runEnd, limit)
    }
    return (start) => {
      if (isIn(text, start - 1, ALNUM)) return -1
      const q = start + 3
      const kind = openaiKind(text, q)
      markers ??= findAll(text, OPENAI_MARKER)
      if (kind === 0 && markers.length === 0) return -1
      const end = runEndFrom(q, start + 139)
      if (kind > 0 && end - q >= kind + 80) return end
      if (hasMarker(markers, q + 20, Math.min(q + 100, end - 28))) return end
      return kind > 0 && hasMarker(markers, q + kind + 20, Math.min(q + kind + 100, end - 28)) ? end : -1
    }
  },
}

/** The length of the kind (`proj-`, `svcacct-`, `admin-`) at `at`, or 0. */
function openaiKind(text: string, at: number): number {
  for (const kind of OPENAI_KINDS) if (text.startsWith(kind, at)) return kind.length
  return 0
}

function findAll(text: string, literal: string): number[] {
  const out: number[] = []
  for (let i = text.indexOf(literal); i >= 0; i = text.indexOf(literal, i + 1)) out.push(i)
  return out
}

/** Whether sorted `markers` holds one in [from, to]. */
function hasMarker(markers: readonly number[], from: number, to: number): boolean {
  const k = firstAtLeast(markers, from)
  return k < markers.length && markers[k]! <= to
}

/** The index of the first element of sorted `xs` that is ≥ `x` (xs.length when none). */
function firstAtLeast(xs: readonly number[], x: number): number {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]! < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** In order: the first detector that matches names a text. */
export const DETECTORS: readonly Detector[] = [
  privateKey,
  awsAccessKeyId,
  awsSecretAccessKey,
  githubToken,
  token('github_fine_grained_token', 'github_pat_', WORD, 82),
  token('gitlab_token', 'glpat-', TOKEN, 20),
  slackToken,
  token('google_api_key', 'AIza', TOKEN, 35),
  stripeSecretKey,
  token('npm_token', 'npm_', ALNUM, 36),
  anthropicApiKey,
  openaiApiKey,
]

/** The most any detector reads from a match's first character, plus the character before it. */
export const DETECTOR_REACH = Math.max(...DETECTORS.map((d) => d.reach)) + 1

/** No match is shorter than this (`xoxb-` and ten characters). */
export const SHORTEST_MATCH = 15
