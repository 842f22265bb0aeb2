/**
 * Classify a request path on pypi.org, files.pythonhosted.org or a private index (any prefix). PURE.
 *
 * Pass the path exactly as it will be sent upstream. Each segment is percent-decoded once (pip
 * quotes file names, so an epoch's `!` arrives as `%21`); a segment that still holds `%` after that
 * (double encoding), or decodes to `/`, `\`, a control character or a dot segment, is
 * `unparseable` and should be refused.
 */
import { parseDistFilename, type Alternative, type DistKind } from './pypi-filename.js'
import { isPypiName, normalizePypiName, type PackageDenyDetail, type PackageRules } from './rules.js'

export type PypiPathProblem =
  'not_absolute' | 'bad_encoding' | 'dot_segment' | 'empty_segment' | 'bad_name' | 'bad_filename' | 'unknown_shape'

export type PypiRequest =
  /** `/simple/<project>/` (with or without the slash): the Simple API page, JSON or HTML. */
  | { readonly kind: 'simple_project'; readonly project: string }
  /** `/pypi/<project>/json` or `/pypi/<project>/<version>/json`: the legacy JSON API. */
  | { readonly kind: 'legacy_json'; readonly project: string; readonly version: string | null }
  /** `/packages/…/<filename>` (a distribution or its PEP 658 `.metadata`). */
  | {
      readonly kind: 'file'
      readonly filename: string
      readonly project: string
      readonly version: string
      readonly dist: DistKind
      readonly metadata: boolean
      /** Other projects an old sdist's name could belong to (pypi-filename.ts); empty for most files. */
      readonly alternatives: readonly Alternative[]
      /**
       * Where this index's Simple pages are, as a path prefix: what comes before the file's first
       * `packages` segment (`/repository/pypi` on Nexus), else empty (the host's own `/simple/`).
       */
      readonly indexPrefix: string
    }
  /** `/`, `/simple/` (the project list), web pages, search: no distribution is fetched. */
  | { readonly kind: 'other' }
  | { readonly kind: 'unparseable'; readonly problem: PypiPathProblem }

const unparseable = (problem: PypiPathProblem): PypiRequest => ({ kind: 'unparseable', problem })

function decodeSegments(path: string): string[] | PypiPathProblem {
  const raw = path.slice(1).split('/')
  // One trailing slash is the Simple API's canonical form; other empty segments are not.
  if (raw.length > 1 && raw[raw.length - 1] === '') raw.pop()
  const out: string[] = []
  for (const seg of raw) {
    if (seg === '') return 'empty_segment'
    let decoded: string
    try {
      decoded = decodeURIComponent(seg)
    } catch {
      return 'bad_encoding'
    }
    if (/[%/\\\x00-\x1f\x7f]/.test(decoded)) return 'bad_encoding'
    if (decoded === '.' || decoded === '..') return 'dot_segment'
    out.push(decoded)
  }
  return out
}

/** Distribution file endings (wheels, sdists, eggs, PEP 658 metadata): a last segment like these is a file. */
const DIST_ENDING = /\.(?:whl|tar\.gz|tgz|tar\.bz2|tar\.xz|zip|egg|exe|msi|rpm|metadata)$/i

export function classifyPypiPath(target: string): PypiRequest {
  const path = target.split('?', 1)[0] as string
  if (!path.startsWith('/')) return unparseable('not_absolute')
  if (path === '/') return { kind: 'other' }
  const segs = decodeSegments(path)
  if (typeof segs === 'string') return unparseable(segs)
  // Private indexes serve the same API under a prefix (Nexus /repository/<repo>/simple/, Artifactory
  // /artifactory/api/pypi/<repo>/simple/, devpi /<user>/<index>/+simple/ and /+f/, GitLab
  // /api/v4/projects/<id>/packages/pypi/simple/ and …/files/<sha>/): a distribution is known by its
  // file name wherever it is, and the Simple API by its last `simple` segment, so no layout passes unread.
  const last = segs[segs.length - 1] as string
  if (segs[0] === 'packages' || DIST_ENDING.test(last)) {
    if (segs[0] === 'packages' && segs.length < 3) return unparseable('unknown_shape')
    const dist = parseDistFilename(last)
    if (!dist.ok) return unparseable('bad_filename')
    const packages = segs.indexOf('packages')
    const prefix =
      packages > 0
        ? path
            .split('/')
            .slice(0, packages + 1)
            .join('/')
        : ''
    return {
      kind: 'file',
      filename: last,
      project: dist.project,
      version: dist.version,
      dist: dist.kind,
      metadata: dist.metadata,
      alternatives: dist.alternatives ?? [],
      indexPrefix: prefix,
    }
  }
  const simple = Math.max(segs.lastIndexOf('simple'), segs.lastIndexOf('+simple'))
  if (simple >= 0) {
    const rest = segs.slice(simple + 1)
    if (rest.length === 0) return { kind: 'other' }
    if (rest.length !== 1) return unparseable('unknown_shape')
    const name = rest[0] as string
    return isPypiName(name) ? { kind: 'simple_project', project: normalizePypiName(name) } : unparseable('bad_name')
  }
  const pypi = segs.lastIndexOf('pypi')
  if (pypi >= 0 && last === 'json') {
    const rest = segs.slice(pypi + 1)
    if (rest.length !== 2 && rest.length !== 3) return unparseable('unknown_shape')
    const name = rest[0] as string
    if (!isPypiName(name)) return unparseable('bad_name')
    const version = rest.length === 3 ? (rest[1] as string) : null
    return { kind: 'legacy_json', project: normalizePypiName(name), version }
  }
  if (segs[0] === 'pypi') return unparseable('unknown_shape')
  return { kind: 'other' }
}

/**
 * A project (and version) among an ambiguous file name's other readings that the rules refuse, with
 * why: the first denied one, else the first not allowed; null when they admit them all. The package
 * gate and the offline decision ask this before judging the file by its first reading.
 */
export function refusedAlternative(
  req: PypiRequest,
  rules: Pick<PackageRules, 'admits'>,
): (Alternative & { readonly detail: PackageDenyDetail }) | null {
  if (req.kind !== 'file') return null
  let notAllowed: (Alternative & { readonly detail: PackageDenyDetail }) | null = null
  for (const alt of req.alternatives) {
    const admitted = rules.admits(alt.project, alt.version)
    if (admitted.ok) continue
    if (admitted.detail !== 'not_allowed') return { ...alt, detail: admitted.detail }
    notAllowed ??= { ...alt, detail: admitted.detail }
  }
  return notAllowed
}
