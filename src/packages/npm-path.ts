/**
 * Classify a request path on the npm registry, so package rules know which package (and version)
 * a request is for. PURE.
 *
 * Pass the path exactly as it will be sent upstream (the registry decodes it once, and so do we).
 * Package names are URL-safe (npm-name.ts), so a client has no reason to percent-encode anything
 * but the `/` between scope and name (`%2f`, `%2F`), the scope's `@` (`%40`) and a `+` in a
 * version (`%2B`). Any other escape, a double-encoded one (`%252f`), a dot segment (`..`, `%2e`) or
 * an empty segment is `unparseable`: such a path is built to make this parser and the registry
 * disagree about the package, so the caller refuses it.
 */
import semver from 'semver'
import { parseNpmName } from './npm-name.js'

export type NpmPathProblem =
  | 'not_absolute'
  | 'bad_encoding'
  | 'dot_segment'
  | 'empty_segment'
  | 'bad_name'
  | 'bad_tarball'
  | 'bad_spec'
  | 'unknown_shape'

export type NpmRequest =
  /** `/<name>`, `/@scope%2fname`, `/@scope/name`: the package document (full or abbreviated). */
  | { readonly kind: 'packument'; readonly name: string }
  /** `/<name>/-/<base>-<version>.tgz`: a tarball; the version comes from the file name. */
  | { readonly kind: 'tarball'; readonly name: string; readonly version: string; readonly file: string }
  /**
   * `/<name>/<spec>`: one version's manifest. `version` is set when `spec` is an exact version;
   * otherwise `spec` is a dist-tag, to be resolved against the rewritten packument.
   */
  | { readonly kind: 'version_doc'; readonly name: string; readonly spec: string; readonly version: string | null }
  /**
   * `/-/package/<name>/dist-tags` (the tag listing) or `…/dist-tags/<tag>` (one tag's version):
   * answered from the rewritten packument.
   */
  | { readonly kind: 'dist_tags'; readonly name: string; readonly tag?: string }
  /** `/`, `/-/…` (search, audit, whoami, ping): no package version is fetched. */
  | { readonly kind: 'other' }
  | { readonly kind: 'unparseable'; readonly problem: NpmPathProblem }

const ALLOWED_ESCAPE = /^%(2f|40|2b)$/i
// A dist-tag or an exact version; ranges (with spaces, `^`, `<`) are not something clients request.
const SPEC = /^[A-Za-z0-9][A-Za-z0-9\-_.+]*$/

const DIST_TAGS = /^\/-\/package\/(.+)\/dist-tags\/?$/
const DIST_TAG = /^\/-\/package\/(.+)\/dist-tags\/([^/]+)\/?$/

const unparseable = (problem: NpmPathProblem): NpmRequest => ({ kind: 'unparseable', problem })

/** Decode one raw path segment, accepting only the escapes a client legitimately sends. */
function decodeSegment(raw: string): string | null {
  const escapes = raw.match(/%.{0,2}/g) ?? []
  if (!escapes.every((e) => ALLOWED_ESCAPE.test(e))) return null
  return raw.replace(/%(2f|40|2b)/gi, (e) => String.fromCharCode(parseInt(e.slice(1), 16)))
}

export function classifyNpmPath(target: string): NpmRequest {
  const path = target.split('?', 1)[0] as string
  if (!path.startsWith('/')) return unparseable('not_absolute')
  const tags = DIST_TAGS.exec(path) ?? DIST_TAG.exec(path)
  if (tags !== null) {
    // The listing names versions too: a tag may point at one the rules withhold.
    const doc = classifyNpmPath(`/${tags[1] as string}`)
    if (doc.kind === 'unparseable') return doc
    if (doc.kind !== 'packument') return unparseable('bad_name')
    const tag = tags[2]
    if (tag === undefined) return { kind: 'dist_tags', name: doc.name }
    return SPEC.test(tag) ? { kind: 'dist_tags', name: doc.name, tag } : unparseable('bad_spec')
  }
  if (path === '/' || path.startsWith('/-/') || path === '/-') return { kind: 'other' }
  const raw = path.slice(1).split('/')
  const segs: string[] = []
  for (const seg of raw) {
    if (seg === '') return unparseable('empty_segment')
    const decoded = decodeSegment(seg)
    if (decoded === null) return unparseable('bad_encoding')
    if (seg === '.' || seg === '..') return unparseable('dot_segment')
    segs.push(decoded)
  }
  let name = segs[0] as string
  let rest = segs.slice(1)
  if (name.startsWith('@') && !name.includes('/')) {
    if (rest.length === 0) return unparseable('bad_name')
    name = `${name}/${rest[0] as string}`
    rest = rest.slice(1)
  }
  const parsed = parseNpmName(name)
  if (!parsed.ok) return unparseable('bad_name')
  if (rest.length === 0) return { kind: 'packument', name }
  if (rest.length === 1) {
    const spec = rest[0] as string
    if (!SPEC.test(spec)) return unparseable('bad_spec')
    return { kind: 'version_doc', name, spec, version: semver.valid(spec) === spec ? spec : null }
  }
  if (rest.length === 2 && rest[0] === '-') {
    const file = rest[1] as string
    const version = versionFromTarball(parsed.base, file)
    return version === null ? unparseable('bad_tarball') : { kind: 'tarball', name, version, file }
  }
  return unparseable('unknown_shape')
}

/**
 * The version in a tarball file name `<base>-<version>.tgz`. The name part is known, so a version
 * with dashes (`1.0.0-beta.1`) is read whole; anything else (another package's base name, a
 * version that is not canonical semver) is null.
 */
export function versionFromTarball(base: string, file: string): string | null {
  if (!file.startsWith(`${base}-`) || !file.endsWith('.tgz')) return null
  const version = file.slice(base.length + 1, -'.tgz'.length)
  return semver.valid(version) === version ? version : null
}
