/**
 * Path patterns: `*` matches within one segment, `**` (a whole segment) across
 * segments, including none: `/a/**` matches `/a/` and `/a/x/y` but not `/a`;
 * `/a/**\/b` matches `/a/b` and `/a/x/y/b`. A pattern may carry a required
 * query (`/x/info/refs?service=git-upload-pack`): every `k=v` it names must be
 * one of the request's `&`-separated parameters. Compared against the output
 * of net/url-path.normalizePath, so patterns must be in that form too. PURE.
 */
import { normalizePath } from '../net/url-path.js'

export interface PathPattern {
  readonly text: string
  /** Set when the pattern has no wildcard: a plain string comparison. */
  readonly literal: string | null
  /** Set for `<literal>/**`: a startsWith check (the commonest shape), no regex. */
  readonly prefix: string | null
  readonly regex: RegExp | null
  /** Parameters that must all appear in the query, e.g. `service=git-upload-pack`. */
  readonly query: readonly string[]
  /** The same, percent-decoded once at compile time (queryHolds compares decoded readings). */
  readonly required: readonly QueryParam[]
}

interface QueryParam {
  readonly key: string
  readonly value: string
}

export type ParsedPathPattern =
  { readonly ok: true; readonly pattern: PathPattern } | { readonly ok: false; readonly message: string }

const REGEX_SPECIAL = /[.+?^${}()|[\]\\]/g

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
  const segments = pathText.split('/')
  if (segments.some((s) => s.includes('**') && s !== '**')) return fail(`'${text}': '**' must be a whole segment`)
  if (!pathText.includes('*'))
    return { ok: true, pattern: { text, literal: pathText, prefix: null, regex: null, query, required: req } }
  const head = pathText.slice(0, -2)
  if (pathText.endsWith('/**') && !head.includes('*'))
    return { ok: true, pattern: { text, literal: null, prefix: head, regex: null, query, required: req } }
  return {
    ok: true,
    pattern: {
      text,
      literal: null,
      prefix: null,
      regex: compileRegex(`^${toRegexSource(segments)}$`),
      query,
      required: req,
    },
  }
}

// Identical patterns across rules share one RegExp: fewer objects for V8 to keep
// compiled and warm. Safe because these regexes have no g/y flag (no lastIndex state).
// Bounded so that many reloads with changing patterns cannot grow it forever.
const regexCache = new Map<string, RegExp>()
const REGEX_CACHE_MAX = 50_000

function compileRegex(source: string): RegExp {
  let re = regexCache.get(source)
  if (re === undefined) {
    re = new RegExp(source)
    if (regexCache.size >= REGEX_CACHE_MAX) regexCache.clear()
    regexCache.set(source, re)
  }
  return re
}

function toRegexSource(segments: readonly string[]): string {
  // segments[0] is '' (the leading slash); each later segment is preceded by '/'.
  let src = ''
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] ?? ''
    const last = i === segments.length - 1
    if (seg === '**') {
      // Trailing `/**`: the slash, then anything. Inner `/**/`: zero or more whole segments.
      src += last ? '/.*' : '(?:/[^/]+)*'
    } else {
      src += `/${seg.replace(REGEX_SPECIAL, '\\$&').replace(/\*/g, '[^/]*')}`
    }
  }
  return src
}

function fail(message: string): ParsedPathPattern {
  return { ok: false, message }
}

/** Does a normalised path plus raw query (no `?`) match? */
export function matchPathPattern(pattern: PathPattern, path: string, query: string): boolean {
  let pathOk: boolean
  if (pattern.literal !== null) pathOk = pattern.literal === path
  else if (pattern.prefix !== null) pathOk = path.startsWith(pattern.prefix)
  else pathOk = pattern.regex !== null && pattern.regex.test(path)
  if (!pathOk) return false
  return pattern.required.length === 0 || queryHolds(pattern.required, query)
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
        if (p.key !== want.key) continue
        if (p.value !== want.value) return false
        seen = true
      }
      if (!seen) return false
    }
  }
  return true
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
