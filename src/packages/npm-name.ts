/**
 * npm package names, by the rules the registry still serves names under (validate-npm-package-name's
 * "valid for old packages"): capitals and `~'!()*` are accepted because old packages such as
 * `JSONStream` carry them. PURE.
 *
 * A name that passes contains only URL-safe characters, so it has exactly one spelling on the wire
 * apart from the `%2f` between scope and name; that is what lets npm-path.ts refuse any other encoding.
 */

export type NpmNameProblem = 'empty' | 'too_long' | 'bad_char' | 'bad_start' | 'reserved'

/** Longest name accepted (npm's limit for new packages; no served package is longer). */
export const MAX_NPM_NAME_LENGTH = 214

// The characters encodeURIComponent leaves alone (checked by pattern: encodeURIComponent throws on
// lone surrogates).
const URL_SAFE = /^[A-Za-z0-9\-_.!~*'()]+$/
const RESERVED = new Set(['node_modules', 'favicon.ico'])

/** A valid name split into its scope (without `@`, or null) and its unscoped part. */
export interface NpmName {
  readonly scope: string | null
  readonly base: string
}

/** Split and check a package name (`left-pad`, `@types/node`): the parts, or the rule it breaks. */
export function parseNpmName(name: string): ({ readonly ok: true } & NpmName) | { ok: false; problem: NpmNameProblem } {
  if (name.length === 0) return { ok: false, problem: 'empty' }
  if (name.length > MAX_NPM_NAME_LENGTH) return { ok: false, problem: 'too_long' }
  if (name.startsWith('@')) {
    const slash = name.indexOf('/')
    if (slash < 0) return { ok: false, problem: 'bad_char' }
    const scope = name.slice(1, slash)
    const base = name.slice(slash + 1)
    if (scope === '' || base === '') return { ok: false, problem: 'empty' }
    if (!URL_SAFE.test(scope) || !URL_SAFE.test(base)) return { ok: false, problem: 'bad_char' }
    if (base.startsWith('.')) return { ok: false, problem: 'bad_start' }
    return { ok: true, scope, base }
  }
  if (!URL_SAFE.test(name)) return { ok: false, problem: 'bad_char' }
  if (/^[._-]/.test(name)) return { ok: false, problem: 'bad_start' }
  if (RESERVED.has(name.toLowerCase())) return { ok: false, problem: 'reserved' }
  return { ok: true, scope: null, base: name }
}

/** Check a scope name given without `@` (`types` for `@types/*`). */
export function isNpmScope(scope: string): boolean {
  return scope !== '' && URL_SAFE.test(scope)
}
