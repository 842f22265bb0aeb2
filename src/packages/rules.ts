/**
 * Package rules (SPEC §11): a registry preset's `packages` block compiled once into a matcher that
 * judges one package version at a time. PURE: time is a parameter.
 *
 * Evaluation order of judge():
 *   1. deny (config list and deny file): a name, a scope or an exact version → `denied`. Deny beats allow.
 *   2. allow, when it is a list: the package (or, for `name@version` entries, that version) must be
 *      listed → otherwise `not_allowed`.
 *   3. min_age, unless min_age_exempt lists the package, its scope or that version: a version younger
 *      than min_age → `too_new`. A version whose publish time is unknown is `too_new` too: we cannot
 *      show it is old enough, and failing open would let a brand-new tarball through whenever its
 *      time is missing.
 *
 * Entries: npm `name`, `@scope/name`, `@scope/*`, `name@1.2.3`, `@scope/name@1.2.3`; PyPI `name`,
 * `name==1.0`, `name@1.0`. npm deny entries match names case-insensitively (fail safe); allow and
 * exempt entries match exactly, since they loosen. PyPI names are compared after PEP 503
 * normalisation (lower case, runs of `-_.` → `-`), versions as written, ignoring case: PEP 440
 * equivalence (`1.0` == `1.0.0`) is not computed, so a version entry must be spelled as PyPI lists it.
 */
import semver from 'semver'
import { isNpmScope, parseNpmName } from './npm-name.js'

export type Ecosystem = 'npm' | 'pypi'

/** The `packages` block, after schema validation and with the deny file already read. */
export interface PackageRulesBlock {
  readonly deny: readonly string[]
  /** null: every package not denied is allowed. */
  readonly allow: readonly string[] | null
  /** The deny file's lines as read, so an error can name its line. */
  readonly denyFileLines: readonly string[]
  readonly minAgeMs: number | null
  readonly minAgeExempt: readonly string[]
}

export type PackageDenyDetail = 'denied' | 'not_allowed' | 'too_new'
export type PackageVerdict = { readonly ok: true } | { readonly ok: false; readonly detail: PackageDenyDetail }

export type RuleList = 'deny' | 'allow' | 'deny_file' | 'min_age_exempt' | 'min_age'
export type RuleEntryProblem =
  'empty' | 'bad_name' | 'bad_scope' | 'bad_version' | 'scope_not_supported' | 'match_everything' | 'bad_min_age'

/** One bad entry: `index` is its position in the list (for deny_file, the line index: line = index + 1). */
export interface RuleEntryError {
  readonly list: RuleList
  readonly index: number
  /** 1-based column of the entry in its deny-file line (1 for list entries). */
  readonly column: number
  readonly entry: string
  readonly problem: RuleEntryProblem
}

export interface PackageRules {
  readonly ecosystem: Ecosystem
  /**
   * What it was compiled from: plain data, so a worker thread can compile the same rules. One block,
   * or (allOfPackageRules) every block that applies to the request, in rule order.
   */
  readonly blocks: readonly PackageRulesBlock[]
  /** Judge one version (`version` null: the package as a whole, by name only). */
  judge(name: string, version: string | null, publishedAtMs: number | null, nowMs: number): PackageVerdict
  /** Steps 1 and 2 of judge() only (deny and allow), for a version whose age does not matter. */
  admits(name: string, version: string | null): PackageVerdict
  /** True when a version of this package may be withheld for its age: its publish times are needed. */
  needsPublishTimes(name: string): boolean
  /** True when some version of this package may be withheld (by version entry, allow list or age). */
  filtersVersions(name: string): boolean
  /** The min_age this version is held to (the largest, of several blocks); null when none or exempt. */
  minAgeMsOf(name: string, version: string | null): number | null
}

const OK: PackageVerdict = Object.freeze({ ok: true })
const verdict = (detail: PackageDenyDetail): PackageVerdict => Object.freeze({ ok: false, detail })
const DENIED = verdict('denied')
const NOT_ALLOWED = verdict('not_allowed')
const TOO_NEW = verdict('too_new')

/** A PyPI project name, normalised per PEP 503. */
export function normalizePypiName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase()
}

// Core metadata's Name rule (the packaging "name" specification).
const PYPI_NAME = /^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$/i
// Only the characters a PEP 440 version (or its file-name escaping) can hold; not a PEP 440 parser.
const PYPI_VERSION = /^[0-9][A-Za-z0-9.!+_-]*$/

/** True for a syntactically valid PyPI project name (any spelling, before normalisation). */
export function isPypiName(name: string): boolean {
  return PYPI_NAME.test(name)
}

type Entry =
  | { readonly kind: 'scope'; readonly scope: string }
  | { readonly kind: 'name'; readonly name: string; readonly version: string | null }

type Parsed = { readonly ok: true; readonly entry: Entry } | { readonly ok: false; readonly problem: RuleEntryProblem }

function parseNpmEntry(text: string): Parsed {
  if (text === '') return { ok: false, problem: 'empty' }
  if (/^@?\*/.test(text)) return { ok: false, problem: 'match_everything' }
  let nameEnd = text.indexOf('@', 1)
  if (text.startsWith('@')) {
    const slash = text.indexOf('/')
    if (slash < 0 || !isNpmScope(text.slice(1, slash))) return { ok: false, problem: 'bad_scope' }
    if (text.slice(slash + 1) === '*') return { ok: true, entry: { kind: 'scope', scope: text.slice(1, slash) } }
    nameEnd = text.indexOf('@', slash)
  }
  const name = nameEnd < 0 ? text : text.slice(0, nameEnd)
  if (!parseNpmName(name).ok) return { ok: false, problem: 'bad_name' }
  if (nameEnd < 0) return { ok: true, entry: { kind: 'name', name, version: null } }
  const version = semver.valid(text.slice(nameEnd + 1))
  if (version === null) return { ok: false, problem: 'bad_version' }
  return { ok: true, entry: { kind: 'name', name, version } }
}

function parsePypiEntry(text: string): Parsed {
  if (text === '') return { ok: false, problem: 'empty' }
  if (text.startsWith('*')) return { ok: false, problem: 'match_everything' }
  if (text.startsWith('@')) return { ok: false, problem: 'scope_not_supported' }
  const eq = text.indexOf('==')
  const at = text.indexOf('@')
  const cut = eq >= 0 ? eq : at
  const name = (cut < 0 ? text : text.slice(0, cut)).trim()
  if (!PYPI_NAME.test(name)) return { ok: false, problem: 'bad_name' }
  if (cut < 0) return { ok: true, entry: { kind: 'name', name: normalizePypiName(name), version: null } }
  const version = text.slice(cut + (eq >= 0 ? 2 : 1)).trim()
  if (!PYPI_VERSION.test(version)) return { ok: false, problem: 'bad_version' }
  return { ok: true, entry: { kind: 'name', name: normalizePypiName(name), version: version.toLowerCase() } }
}

/** Compiled entries of one list: `true` for a whole package, or the set of its listed versions. */
interface EntrySet {
  readonly names: Map<string, true | Set<string>>
  readonly scopes: Set<string>
  /** Key of a name (or scope) in this set: lower-cased for npm deny, PEP 503 for PyPI, else as is. */
  readonly key: (name: string) => string
}

function addEntry(set: EntrySet, entry: Entry): void {
  if (entry.kind === 'scope') {
    set.scopes.add(set.key(entry.scope))
    return
  }
  const key = set.key(entry.name)
  const had = set.names.get(key)
  if (had === true) return
  if (entry.version === null) set.names.set(key, true)
  else if (had === undefined) set.names.set(key, new Set([entry.version]))
  else had.add(entry.version)
}

type Match = 'package' | 'version' | 'none'

/** How an entry set covers a package: whole (`package`), only some versions (`version`), or not. */
function coverage(set: EntrySet, ecosystem: Ecosystem, name: string): Match {
  if (ecosystem === 'npm' && name.startsWith('@')) {
    const slash = name.indexOf('/')
    if (slash > 0 && set.scopes.has(set.key(name.slice(1, slash)))) return 'package'
  }
  const hit = set.names.get(set.key(name))
  return hit === undefined ? 'none' : hit === true ? 'package' : 'version'
}

function matches(set: EntrySet, ecosystem: Ecosystem, name: string, version: string | null): boolean {
  const how = coverage(set, ecosystem, name)
  if (how !== 'version') return how === 'package'
  if (version === null) return false
  const versions = set.names.get(set.key(name)) as Set<string>
  return versions.has(ecosystem === 'npm' ? (semver.valid(version) ?? version) : version.toLowerCase())
}

/** Compile a `packages` block, or list every bad entry (all of them, so one edit can fix them all). */
export function compilePackageRules(
  ecosystem: Ecosystem,
  block: PackageRulesBlock,
):
  | { readonly ok: true; readonly rules: PackageRules }
  | { readonly ok: false; readonly errors: readonly RuleEntryError[] } {
  const errors: RuleEntryError[] = []
  const parse = ecosystem === 'npm' ? parseNpmEntry : parsePypiEntry
  const exact = ecosystem === 'npm' ? (s: string) => s : normalizePypiName
  const newSet = (key: (name: string) => string): EntrySet => ({ names: new Map(), scopes: new Set(), key })
  const deny = newSet(ecosystem === 'npm' ? (s) => s.toLowerCase() : normalizePypiName)
  const allow = block.allow === null ? null : newSet(exact)
  const exempt = newSet(exact)

  const fill = (set: EntrySet, list: RuleList, entries: readonly string[]): void => {
    entries.forEach((raw, index) => {
      const entry = raw.trim()
      const parsed = parse(entry)
      if (parsed.ok) addEntry(set, parsed.entry)
      else errors.push({ list, index, column: 1, entry, problem: parsed.problem })
    })
  }
  fill(deny, 'deny', block.deny)
  if (allow !== null && block.allow !== null) fill(allow, 'allow', block.allow)
  fill(exempt, 'min_age_exempt', block.minAgeExempt)
  block.denyFileLines.forEach((line, index) => {
    // `#` starts a comment: no package name or version can contain it.
    const text = line.split('#', 1)[0] as string
    const entry = text.trim()
    if (entry === '') return
    const parsed = parse(entry)
    if (parsed.ok) addEntry(deny, parsed.entry)
    else errors.push({ list: 'deny_file', index, column: text.indexOf(entry) + 1, entry, problem: parsed.problem })
  })
  const minAgeMs = block.minAgeMs
  if (minAgeMs !== null && !(Number.isFinite(minAgeMs) && minAgeMs >= 0)) {
    errors.push({ list: 'min_age', index: 0, column: 1, entry: String(minAgeMs), problem: 'bad_min_age' })
  }
  if (errors.length > 0) return { ok: false, errors }

  const agePolicy = (name: string): boolean =>
    minAgeMs !== null && minAgeMs > 0 && coverage(exempt, ecosystem, name) !== 'package'
  const admits = (name: string, version: string | null): PackageVerdict => {
    if (matches(deny, ecosystem, name, version)) return DENIED
    if (allow !== null && coverage(allow, ecosystem, name) === 'none') return NOT_ALLOWED
    if (allow !== null && version !== null && !matches(allow, ecosystem, name, version)) return NOT_ALLOWED
    return OK
  }
  const rules: PackageRules = {
    ecosystem,
    blocks: [block],
    admits(rawName, version) {
      return admits(ecosystem === 'pypi' ? normalizePypiName(rawName) : rawName, version)
    },
    judge(rawName, version, publishedAtMs, nowMs) {
      const name = ecosystem === 'pypi' ? normalizePypiName(rawName) : rawName
      const admitted = admits(name, version)
      if (!admitted.ok || version === null) return admitted
      if (minAgeMs === null || minAgeMs === 0 || matches(exempt, ecosystem, name, version)) return OK
      if (publishedAtMs === null || !Number.isFinite(publishedAtMs)) return TOO_NEW
      return nowMs - publishedAtMs >= minAgeMs ? OK : TOO_NEW
    },
    needsPublishTimes(rawName) {
      return agePolicy(ecosystem === 'pypi' ? normalizePypiName(rawName) : rawName)
    },
    filtersVersions(rawName) {
      const name = ecosystem === 'pypi' ? normalizePypiName(rawName) : rawName
      if (agePolicy(name) || coverage(deny, ecosystem, name) !== 'none') return true
      return allow !== null && coverage(allow, ecosystem, name) !== 'package'
    },
    minAgeMsOf(rawName, version) {
      const name = ecosystem === 'pypi' ? normalizePypiName(rawName) : rawName
      if (minAgeMs === null || minAgeMs === 0 || matches(exempt, ecosystem, name, version)) return null
      return minAgeMs
    },
  }
  return { ok: true, rules: Object.freeze(rules) }
}

/** Compile every block (a combination's `blocks`, as a worker receives them) into one PackageRules. */
export function compileAllPackageRules(
  ecosystem: Ecosystem,
  blocks: readonly PackageRulesBlock[],
):
  | { readonly ok: true; readonly rules: PackageRules }
  | { readonly ok: false; readonly errors: readonly RuleEntryError[] } {
  const parts: PackageRules[] = []
  for (const block of blocks) {
    const compiled = compilePackageRules(ecosystem, block)
    if (!compiled.ok) return compiled
    parts.push(compiled.rules)
  }
  return { ok: true, rules: allOfPackageRules(parts) }
}

/** Refusals from strongest to weakest: a version several blocks refuse is refused for the strongest. */
const RANK: Readonly<Record<PackageDenyDetail, number>> = { denied: 0, not_allowed: 1, too_new: 2 }

function strictest(a: PackageVerdict, b: PackageVerdict): PackageVerdict {
  if (a.ok) return b
  if (b.ok) return a
  return RANK[b.detail] < RANK[a.detail] ? b : a
}

/**
 * Several `packages` blocks that apply to the same request (the agent is in two groups that each
 * guard the registry, or has one of its own), as one: a version passes only if every block passes
 * it (SPEC §3, a matching deny beats any allow). So deny lists and files add up, a package must be
 * on every allow list that is set, the largest min_age holds, and a version is exempt from min_age
 * only where every block with a min_age exempts it. The ecosystem is the first part's; the caller
 * combines only parts of one ecosystem.
 */
export function allOfPackageRules(parts: readonly PackageRules[]): PackageRules {
  const first = parts[0]
  if (first === undefined) throw new Error('allOfPackageRules: no rules')
  if (parts.length === 1) return first
  const rules: PackageRules = {
    ecosystem: first.ecosystem,
    blocks: parts.flatMap((p) => p.blocks),
    judge(name, version, publishedAtMs, nowMs) {
      let out = OK
      for (const p of parts) out = strictest(out, p.judge(name, version, publishedAtMs, nowMs))
      return out
    },
    admits(name, version) {
      let out = OK
      for (const p of parts) out = strictest(out, p.admits(name, version))
      return out
    },
    needsPublishTimes: (name) => parts.some((p) => p.needsPublishTimes(name)),
    filtersVersions: (name) => parts.some((p) => p.filtersVersions(name)),
    minAgeMsOf(name, version) {
      let out: number | null = null
      for (const p of parts) {
        const ms = p.minAgeMsOf(name, version)
        if (ms !== null && (out === null || ms > out)) out = ms
      }
      return out
    },
  }
  return Object.freeze(rules)
}
