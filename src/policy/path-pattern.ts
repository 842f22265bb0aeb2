/**
 * Path patterns: `*` matches within one segment, `**` (a whole segment) across
 * segments, including none: `/a/**` matches `/a/` and `/a/x/y` but not `/a`;
 * `/a/**\/b` matches `/a/b` and `/a/x/y/b`. A pattern may carry a required
 * query (`/x/info/refs?service=git-upload-pack`): every `k=v` it names must be
 * one of the request's `&`-separated parameters. Compared against the output
 * of net/url-path.normalizePath, so patterns must be in that form too. PURE.
 *
 * Exact semantics, segment by segment (a path's segments are what lies between
 * its slashes; the path must start with `/`):
 * - a segment without `*` equals one path segment; one with `*` matches one path
 *   segment, each `*` standing for any run of characters (empty included) but never `/`;
 * - an inner `**` matches zero or more whole, non-empty path segments;
 * - a trailing `/**` matches a slash and then anything (`/a/**` matches `/a/`, not `/a`).
 *
 * A deny rule's pattern is matched to fail safe, as some server could read the path (forDeny): a
 * trailing `/**` also covers the bare prefix (`/a/**` covers `/a`: the directory itself, which an
 * origin may serve as its index or redirect from), and letters match in either case (`/a/SECRET`
 * is `/a/secret` to a case-insensitive origin: IIS, macOS, a case-folding router). Allow patterns
 * match as written. The lower-cased twin is compiled once (`folded`), the path lower-cased once per
 * request (foldedPath), never per rule.
 *
 * Matching never backtracks (issue 11: the RegExps this replaced took 65 s on a 2 KB
 * path). A segment with `*` is matched greedily, each literal piece at its leftmost
 * place, found with a KMP scan: O(segment + pattern segment). The segments before
 * the first inner `**` are walked from the start and those after the last one from
 * the end; a lone inner `**` then checks what lies between in one scan. Only two or
 * more inner `**` need a pass per pattern segment over the path segments between,
 * keeping the set of path prefixes the pattern can have consumed so far: at most
 * O(pattern segments × path segments) segment comparisons. matchPathPatternCounted
 * exposes the work done so tests can bound it.
 */
import { normalizePath } from '../net/url-path.js'

/**
 * The longest normalised path the policy matches. decide.ts refuses a longer one (`denied_path`,
 * detail `path_too_long`) so that a rule's cost per request stays small; the matcher itself is
 * correct and bounded for any length.
 */
export const MAX_MATCHED_PATH_BYTES = 8192

export interface PathPattern {
  readonly text: string
  /** Set when the pattern has no wildcard: a plain string comparison. */
  readonly literal: string | null
  /** Set for `<literal>/**`: a startsWith check (the commonest shape). */
  readonly prefix: string | null
  /** Set for every other pattern: its segments, compiled once. */
  readonly glob: CompiledGlob | null
  /** Parameters that must all appear in the query, e.g. `service=git-upload-pack`. */
  readonly query: readonly string[]
  /** The same, percent-decoded once at compile time (queryHolds compares decoded readings). */
  readonly required: readonly QueryParam[]
  /** The path part lower-cased, for deny rules; null when lower-casing changes nothing (this pattern serves). */
  readonly folded: PathPattern | null
}

/**
 * A pattern's segments after the leading `/`, without a trailing `**` (that is `rest`), in three
 * runs: `head` up to the first inner `**` and `tail` after the last one each meet a fixed number
 * of path segments, so one walk from either end matches them; only `middle` (from the first inner
 * `**` to the last, or to the end with `rest`) needs the pass over path segments.
 */
interface CompiledGlob {
  readonly head: readonly Segment[]
  readonly middle: readonly Segment[]
  readonly tail: readonly Segment[]
  /** Ends with `/**`: one more slash, then anything. */
  readonly rest: boolean
}

type Segment =
  | { readonly kind: 'literal'; readonly text: string }
  /** `head*…*tail`: the pieces between the stars must appear in order, leftmost first. */
  | {
      readonly kind: 'star'
      readonly head: string
      readonly middles: readonly Piece[]
      readonly tail: string
      readonly minLength: number
    }
  /** An inner `**`: zero or more whole, non-empty segments. */
  | { readonly kind: 'any' }

interface Piece {
  readonly text: string
  /** KMP failure function: the longest proper border of text[0..k]. */
  readonly border: readonly number[]
}

interface QueryParam {
  readonly key: string
  readonly value: string
}

export type ParsedPathPattern =
  { readonly ok: true; readonly pattern: PathPattern } | { readonly ok: false; readonly message: string }

export function parsePathPattern(text: string): ParsedPathPattern {
  const q = text.indexOf('?')
  const pathText = q < 0 ? text : text.slice(0, q)
  const query = q < 0 ? [] : text.slice(q + 1).split('&')
  if (query.some((p) => p === '')) return fail(`'${text}': empty query parameter`)
  const required = query.map(decodeParam)
  if (required.some((p) => p === null)) return fail(`'${text}': a query parameter has a bad %-escape`)
  const req = required as QueryParam[]
  if (!pathText.startsWith('/')) return fail(`'${text}': a path pattern starts with '/'`)
  const normal = normalizePath(pathText)
  if (normal === null) return fail(`'${text}' is not a valid path`)
  if (normal !== pathText) return fail(`'${text}' is not in normal form; use '${normal}${q < 0 ? '' : text.slice(q)}'`)
  if (pathText.split('/').some((s) => s.includes('**') && s !== '**'))
    return fail(`'${text}': '**' must be a whole segment`)
  const lower = pathText.toLowerCase()
  const folded = lower === pathText ? null : compilePattern(text, lower, query, req, null)
  return { ok: true, pattern: compilePattern(text, pathText, query, req, folded) }
}

/** A checked pattern's matcher: the cheapest shape that fits (literal, prefix, glob). */
function compilePattern(
  text: string,
  pathText: string,
  query: readonly string[],
  required: readonly QueryParam[],
  folded: PathPattern | null,
): PathPattern {
  const shape = { text, literal: null, prefix: null, glob: null, query, required, folded }
  if (!pathText.includes('*')) return { ...shape, literal: pathText }
  const head = pathText.slice(0, -2)
  if (pathText.endsWith('/**') && !head.includes('*')) return { ...shape, prefix: head }
  return { ...shape, glob: compileGlob(pathText.split('/').slice(1)) }
}

function compileGlob(texts: readonly string[]): CompiledGlob {
  const rest = texts[texts.length - 1] === '**'
  const segments = (rest ? texts.slice(0, -1) : texts).map(compileSegment)
  const first = segments.findIndex((s) => s.kind === 'any')
  // With `rest` the tail is not anchored at the end of the path, so it stays in the middle.
  const last = first < 0 ? -1 : rest ? segments.length - 1 : segments.findLastIndex((s) => s.kind === 'any')
  const run = (from: number, to: number): readonly Segment[] => Object.freeze(segments.slice(from, to))
  if (first < 0) return Object.freeze({ head: run(0, segments.length), middle: run(0, 0), tail: run(0, 0), rest })
  return Object.freeze({
    head: run(0, first),
    middle: run(first, last + 1),
    tail: run(last + 1, segments.length),
    rest,
  })
}

function compileSegment(text: string): Segment {
  if (text === '**') return { kind: 'any' }
  if (!text.includes('*')) return { kind: 'literal', text }
  const pieces = text.split('*')
  const head = pieces[0] ?? ''
  const tail = pieces[pieces.length - 1] ?? ''
  const middles = pieces.slice(1, -1).filter((p) => p !== '')
  const minLength = middles.reduce((n, p) => n + p.length, head.length + tail.length)
  return { kind: 'star', head, middles: Object.freeze(middles.map(compilePiece)), tail, minLength }
}

function compilePiece(text: string): Piece {
  const border = [0]
  for (let i = 1, k = 0; i < text.length; i++) {
    while (k > 0 && text.charCodeAt(i) !== text.charCodeAt(k)) k = border[k - 1] ?? 0
    if (text.charCodeAt(i) === text.charCodeAt(k)) k++
    border.push(k)
  }
  return { text, border: Object.freeze(border) }
}

function fail(message: string): ParsedPathPattern {
  return { ok: false, message }
}

/**
 * Does a normalised path plus raw query (no `?`) match? Read cautiously either way round: for an
 * allow rule (`forDeny` false) the path matches as written and a required query must hold however a
 * server reads it; for a deny rule it is enough that some server could read them so: the path in
 * either case, a trailing `/**` covering the bare prefix too, the query as queryMayHold reads it.
 */
export function matchPathPattern(pattern: PathPattern, path: string, query: string, forDeny = false): boolean {
  if (!(forDeny ? pathMayMatch(pattern.folded ?? pattern, foldedPath(path)) : pathMatches(pattern, path))) return false
  if (pattern.required.length === 0) return true
  return forDeny ? queryMayHold(pattern.required, query) : queryHolds(pattern.required, query)
}

function pathMatches(pattern: PathPattern, path: string): boolean {
  if (pattern.literal !== null) return pattern.literal === path
  if (pattern.prefix !== null) return path.startsWith(pattern.prefix)
  return pattern.glob !== null && matchGlob(pattern.glob, path, false)
}

/** pathMatches for a deny rule (both already lower-cased): a trailing `/**` also covers the bare prefix. */
function pathMayMatch(pattern: PathPattern, path: string): boolean {
  if (pattern.literal !== null) return pattern.literal === path
  const prefix = pattern.prefix
  if (prefix !== null) return path.startsWith(prefix) || (path.length === prefix.length - 1 && prefix.startsWith(path))
  return pattern.glob !== null && matchGlob(pattern.glob, path, true)
}

// The last path lower-cased: a decision asks every deny rule's patterns about the same path, so it is
// lower-cased once per request, not once per pattern (decisions are synchronous, never re-entered).
let lastPath = ''
let lastFolded = ''

function foldedPath(path: string): string {
  if (path !== lastPath) {
    lastPath = path
    lastFolded = path.toLowerCase()
  }
  return lastFolded
}

// Work done by the matcher (segment visits, characters compared), read only through
// matchPathPatternCounted. A module-level counter costs one increment per step; a
// parameter or returned tuple would cost more on the hot path.
let steps = 0

/**
 * matchPathPattern plus the number of steps it took: one per path segment visited and per
 * character a segment comparison examined. Tests bound it to prove the matcher linear without timing.
 */
export function matchPathPatternCounted(
  pattern: PathPattern,
  path: string,
  query: string,
): { matched: boolean; steps: number } {
  steps = 0
  const matched = matchPathPattern(pattern, path, query)
  return { matched, steps }
}

const SLASH = 0x2f

/** `bare`: a trailing `/**` may also match nothing at all (the bare prefix, for deny rules). */
function matchGlob(glob: CompiledGlob, path: string, bare: boolean): boolean {
  if (path.charCodeAt(0) !== SLASH) return false
  const from = walkForward(glob.head, path)
  if (from < 0) return false
  if (glob.middle.length === 0) return glob.rest ? bare || from < path.length : from === path.length
  const to = glob.tail.length === 0 ? path.length : walkBackward(glob.tail, path, from)
  return to >= 0 && matchAcross(glob, path, from, to, bare)
}

// Hand-written character loops below: on the short strings paths are made of they cost a
// fraction of indexOf/startsWith with a position, which go through generic string search.

/** Does `text` lie in `path` at `at`? */
function hasAt(path: string, text: string, at: number): boolean {
  if (at + text.length > path.length) return false
  steps += text.length
  for (let k = 0; k < text.length; k++) if (path.charCodeAt(at + k) !== text.charCodeAt(k)) return false
  return true
}

/** Match `segments` against the first path segments: the slash after them (or path.length), or -1. */
function walkForward(segments: readonly Segment[], path: string): number {
  let slash = 0 // the slash before the next path segment, or path.length when there is none
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as Segment
    steps++
    if (slash >= path.length) return -1
    let end = slash + 1
    if (seg.kind === 'literal') {
      // Compare first, then require the segment to end there: no separate scan for the slash.
      end += seg.text.length
      if (!hasAt(path, seg.text, slash + 1) || (end < path.length && path.charCodeAt(end) !== SLASH)) return -1
    } else {
      while (end < path.length && path.charCodeAt(end) !== SLASH) end++
      steps += end - slash
      if (!matchSegment(seg, path, slash + 1, end)) return -1
    }
    slash = end
  }
  return slash
}

/** Match `segments` against the last path segments, all after `floor`: the slash before them, or -1. */
function walkBackward(segments: readonly Segment[], path: string, floor: number): number {
  let end = path.length
  for (let i = segments.length - 1; i >= 0; i--) {
    steps++
    let slash = end - 1
    while (slash >= floor && path.charCodeAt(slash) !== SLASH) slash--
    steps += end - slash
    if (slash < floor || !matchSegment(segments[i] as Segment, path, slash + 1, end)) return -1
    end = slash
  }
  return end
}

// Scratch for matchAcross, reused across calls (matching is synchronous and never re-entered),
// so a typical match allocates nothing. Grown on demand; a path longer than MAX_MATCHED_PATH_BYTES
// gets its own arrays rather than leaving big ones behind.
let scratchEnds = new Int32Array(64)
let scratchReach = new Uint8Array(64)

/**
 * The middle run, between slashes `from` and `to` (or path.length): reach[j] says whether the
 * middle segments seen so far can consume exactly the first j path segments there. Each pattern
 * segment updates reach in one pass over those path segments, so the whole match is
 * O(pattern segments × path segments) segment comparisons, with no recursion.
 */
function matchAcross(glob: CompiledGlob, path: string, from: number, to: number, bare: boolean): boolean {
  if (glob.middle.length === 1 && !glob.rest) {
    // A lone inner `**` (the commonest shape): any run of whole, non-empty segments, so no `//`
    // (path[to] is the slash before the tail). No pass needed.
    steps += to - from
    for (let i = from; i < to; i++) if (path.charCodeAt(i) === SLASH && path.charCodeAt(i + 1) === SLASH) return false
    return true
  }
  let count = 0
  for (let i = from; i < to; i++) if (path.charCodeAt(i) === SLASH) count++
  steps += to - from
  let ends = scratchEnds
  let reach = scratchReach
  if (count + 1 > ends.length) {
    ends = new Int32Array(count + 1)
    reach = new Uint8Array(count + 1)
    if (path.length <= MAX_MATCHED_PATH_BYTES) [scratchEnds, scratchReach] = [ends, reach]
  }
  // ends[j] = where path segment j of the range ends (the next slash, or `to`); ends[0] = from.
  ends[0] = from
  for (let j = 1, i = from + 1; j <= count; j++, i++) {
    while (i < to && path.charCodeAt(i) !== SLASH) i++
    ends[j] = i
  }
  reach.fill(0, 0, count + 1)
  reach[0] = 1
  const segments = glob.middle
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s] as Segment
    let alive = reach[0] === 1 && seg.kind === 'any'
    let before = reach[0] as number // reach[j - 1] before this pass
    if (seg.kind !== 'any') reach[0] = 0
    for (let j = 1; j <= count; j++) {
      steps++
      const start = (ends[j - 1] as number) + 1
      const end = ends[j] as number
      const was = reach[j] as number
      if (seg.kind === 'any') {
        // Zero segments (keep was), or one more non-empty segment after a reachable prefix.
        if (was === 0 && reach[j - 1] === 1 && end > start) reach[j] = 1
      } else {
        reach[j] = before === 1 && matchSegment(seg, path, start, end) ? 1 : 0
      }
      if (reach[j] === 1) alive = true
      before = was
    }
    if (!alive) return false // nothing reachable: no later segment can help
  }
  if (!glob.rest) return reach[count] === 1
  // A trailing `/**` needs at least one more slash after the consumed prefix (unless `bare`).
  for (let j = 0; j < count; j++) if (reach[j] === 1) return true
  return bare && reach[count] === 1
}

/** Does path[start, end) (one segment, no slash) match this literal or starred pattern segment? */
function matchSegment(seg: Segment, path: string, start: number, end: number): boolean {
  if (seg.kind === 'literal') return end - start === seg.text.length && hasAt(path, seg.text, start)
  if (seg.kind === 'any') return false // never reached: `any` is handled by matchAcross
  if (end - start < seg.minLength) return false
  const tailStart = end - seg.tail.length
  if (!hasAt(path, seg.head, start) || !hasAt(path, seg.tail, tailStart)) return false
  // Leftmost placement of each piece leaves the most room for the ones after it, so greed is exact.
  let from = start + seg.head.length
  for (let m = 0; m < seg.middles.length; m++) {
    const piece = seg.middles[m] as Piece
    const at = findPiece(piece, path, from, tailStart)
    if (at < 0) return false
    from = at + piece.text.length
  }
  return true
}

/** Leftmost index ≥ from where piece lies wholly before limit, or -1. KMP: the scan never moves back. */
function findPiece(piece: Piece, path: string, from: number, limit: number): number {
  const { text, border } = piece
  let k = 0
  for (let i = from; i < limit; i++) {
    const c = path.charCodeAt(i)
    steps++
    while (k > 0 && text.charCodeAt(k) !== c) {
      k = border[k - 1] ?? 0
      steps++
    }
    if (text.charCodeAt(k) === c) k++
    if (k === text.length) return i - k + 1
  }
  return -1
}

/** `&`, as every server splits a query; `&` and `;`, as some older ones (CGI libraries) also do. */
const QUERY_SPLITS = [/&/, /[&;]/]

/**
 * Every required `k=v` holds however a server reads the query: `k` is present, and every parameter
 * named `k` (keys and values percent-decoded, `+` as a space, split on `&` or also on `;`) has the
 * value `v`. A repeated `k` with another value does not match: servers differ on which one wins
 * (git http-backend takes the last, so `?service=git-upload-pack&service=git-receive-pack` would
 * open a read-only rule's push). A parameter that does not decode does not match either.
 */
function queryHolds(required: readonly QueryParam[], query: string): boolean {
  for (const split of QUERY_SPLITS) {
    const params = query === '' ? [] : query.split(split).map(decodeParam)
    for (const want of required) {
      let seen = false
      for (const p of params) {
        if (p === null) return false
        // The name spelled otherwise (`SERVICE`, ` service`) is this parameter to servers that fold
        // names: with another value, the requirement does not hold for them.
        if (!sameKey(p.key, want.key)) continue
        if (p.value !== want.value) return false
        if (p.key === want.key) seen = true
      }
      if (!seen) return false
    }
  }
  return true
}

/**
 * Could some server read every required `k=v` in the query? Each is looked for under every split,
 * among all parameters named `k` (servers differ on which of several wins; names as sameKey folds
 * them), with escapes decoded leniently (a bad escape left as written, as most decoders do, rather
 * than the parameter dropped), and values once more (a server that decodes twice).
 * What a deny rule asks: `?service=git-upload-pack&service=git-receive-pack` is a receive-pack to
 * git, and `?service=git-receive-pack&%zz` one to any lenient decoder.
 */
function queryMayHold(required: readonly QueryParam[], query: string): boolean {
  if (query === '') return false
  return required.every((want) =>
    QUERY_SPLITS.some((split) =>
      query.split(split).some((text) => {
        const p = decodeParamLeniently(text)
        return sameKey(p.key, want.key) && (p.value === want.value || decodeLeniently(p.value) === want.value)
      }),
    ),
  )
}

/**
 * Are two parameter names the same to some server? ASP.NET compares them ignoring case, PHP drops
 * leading spaces (`+service`); the rest compare them as written.
 */
function sameKey(a: string, b: string): boolean {
  return a === b || a.replace(/^\s+/, '').toLowerCase() === b.replace(/^\s+/, '').toLowerCase()
}

function decodeParamLeniently(text: string): QueryParam {
  const eq = text.indexOf('=')
  return eq < 0
    ? { key: decodeLeniently(text), value: '' }
    : { key: decodeLeniently(text.slice(0, eq)), value: decodeLeniently(text.slice(eq + 1)) }
}

/** `+` as a space, well-formed escapes decoded (a run that is not UTF-8 only in its ASCII ones), anything else as written. */
function decodeLeniently(s: string): string {
  return s.replace(/\+/g, ' ').replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run)
    } catch {
      // Not UTF-8 as a whole: its ASCII escapes still read as their characters.
      return run.replace(/%[0-7][0-9A-Fa-f]/g, (e) => String.fromCharCode(parseInt(e.slice(1), 16)))
    }
  })
}

function decodeParam(text: string): QueryParam | null {
  const eq = text.indexOf('=')
  try {
    const decode = (s: string): string => decodeURIComponent(s.replace(/\+/g, ' '))
    return eq < 0
      ? { key: decode(text), value: '' }
      : { key: decode(text.slice(0, eq)), value: decode(text.slice(eq + 1)) }
  } catch {
    return null
  }
}
