/**
 * Project and version from a Python distribution's file name. PURE.
 *
 * - wheel (PEP 427, PEP 491, the binary distribution format spec):
 *   `{name}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl`; the name part has
 *   no dashes, and the build tag starts with a digit.
 * - sdist: `{name}-{version}` + `.tar.gz` (the spec's form), or the older `.zip`, `.tar.bz2`,
 *   `.tar.xz`, `.tgz`, `.tar` that PyPI still serves for old releases. Old sdist names may contain
 *   dashes (`python-dateutil-2.8.2.tar.gz`), so the split is ambiguous without the project: given
 *   `expectedProject`, the split is where the name part normalises to it (as pip does); without it,
 *   at the first dash before a digit that leaves a PEP 440 version, and the other splits are
 *   returned as `alternatives`.
 * - egg: `{name}-{version}(-{python}(-{platform})?)?.egg`, dashes in the name escaped to `_`.
 * A PEP 658 metadata file (`<dist>.metadata`) is read as its distribution.
 *
 * The version is returned as written, checked only for the characters a version can hold: this is
 * no PEP 440 parser.
 */
import { isPypiName, normalizePypiName } from './rules.js'

export type DistKind = 'wheel' | 'sdist' | 'egg'

export type DistFilenameProblem =
  'bad_char' | 'unknown_extension' | 'bad_wheel' | 'bad_name' | 'bad_version' | 'name_mismatch'

export type DistFilename =
  | {
      readonly ok: true
      readonly kind: DistKind
      /** PEP 503-normalised project name. */
      readonly project: string
      readonly version: string
      /** True for a PEP 658 `.metadata` file beside the distribution. */
      readonly metadata: boolean
      /**
       * An old sdist name read without its project may split elsewhere too (`dash-3d-1.0.tar.gz`):
       * the other projects (and versions) it could belong to. Absent when there are none.
       */
      readonly alternatives?: readonly Alternative[]
    }
  | { readonly ok: false; readonly problem: DistFilenameProblem }

const SDIST_EXTENSIONS = ['.tar.gz', '.zip', '.tar.bz2', '.tar.xz', '.tgz', '.tar']
const VERSION = /^[0-9][A-Za-z0-9.!+_]*$/
const SDIST_VERSION = /^[vV]?[0-9][A-Za-z0-9.!+_-]*$/
/** A PEP 440 version (the spec's Appendix B form, the optional leading `v` included). */
const PEP440 =
  /^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?(?:[-_.]?dev[-_.]?[0-9]*)?(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$/i

export interface Alternative {
  /** PEP 503-normalised. */
  readonly project: string
  readonly version: string
}
const TAG = /^[A-Za-z0-9_.]+$/
const MAX_FILENAME = 255

const fail = (problem: DistFilenameProblem): DistFilename => ({ ok: false, problem })

function result(
  kind: DistKind,
  name: string,
  version: string,
  expected: string | null,
  metadata: boolean,
): DistFilename {
  if (!isPypiName(name)) return fail('bad_name')
  const project = normalizePypiName(name)
  if (expected !== null && project !== expected) return fail('name_mismatch')
  return { ok: true, kind, project, version, metadata }
}

function parseWheel(stem: string, expected: string | null, metadata: boolean): DistFilename {
  const parts = stem.split('-')
  if (parts.length !== 5 && parts.length !== 6) return fail('bad_wheel')
  if (!parts.every((p, i) => i === 1 || TAG.test(p))) return fail('bad_wheel')
  if (parts.length === 6 && !/^[0-9]/.test(parts[2] as string)) return fail('bad_wheel')
  const version = parts[1] as string
  if (!VERSION.test(version)) return fail('bad_version')
  return result('wheel', parts[0] as string, version, expected, metadata)
}

const withoutV = (version: string): string => version.replace(/^[vV](?=[0-9])/, '')

function parseSdist(stem: string, expected: string | null, metadata: boolean): DistFilename {
  let cut = -1
  let others: Alternative[] = []
  if (expected !== null) {
    for (let i = stem.indexOf('-'); i > 0; i = stem.indexOf('-', i + 1)) {
      if (normalizePypiName(stem.slice(0, i)) === expected) {
        cut = i
        break
      }
    }
    if (cut < 0) return fail('name_mismatch')
  } else {
    // Every dash before a digit (or a `v` and a digit: PEP 440 allows `v1.0`) could end the name (`dash-3d-1.0` is `dash-3d` 1.0, or `dash` "3d-1.0"):
    // the first whose rest is a PEP 440 version is taken, and the others are named too, so that a
    // deny or allow list can be asked of every project the file could belong to.
    const cuts: number[] = []
    for (let i = stem.search(/-[vV]?[0-9]/); i >= 0; i = stem.indexOf('-', i + 1))
      if (/^[vV]?[0-9]/.test(stem.slice(i + 1, i + 3))) cuts.push(i)
    if (cuts.length === 0) return fail('bad_version')
    cut = cuts.find((i) => PEP440.test(stem.slice(i + 1))) ?? (cuts[0] as number)
    others = cuts
      .filter((i) => i !== cut && isPypiName(stem.slice(0, i)) && SDIST_VERSION.test(stem.slice(i + 1)))
      .map((i) => ({ project: normalizePypiName(stem.slice(0, i)), version: withoutV(stem.slice(i + 1)) }))
  }
  // `v1.0` is 1.0 (PEP 440 normalisation): deny entries and the index spell it without the `v`.
  const version = withoutV(stem.slice(cut + 1))
  if (!SDIST_VERSION.test(version)) return fail('bad_version')
  const parsed = result('sdist', stem.slice(0, cut), version, expected, metadata)
  return parsed.ok && others.length > 0 ? { ...parsed, alternatives: others } : parsed
}

function parseEgg(stem: string, expected: string | null, metadata: boolean): DistFilename {
  const parts = stem.split('-')
  if (parts.length < 2 || parts.length > 4) return fail('bad_version')
  const version = parts[1] as string
  if (!VERSION.test(version)) return fail('bad_version')
  return result('egg', parts[0] as string, version, expected, metadata)
}

/** Parse a distribution file name; `expectedProject` (any spelling) settles ambiguous sdist names. */
export function parseDistFilename(filename: string, expectedProject?: string): DistFilename {
  if (filename.length === 0 || filename.length > MAX_FILENAME) return fail('bad_char')
  if (/[\x00-\x20\x7f/\\%]/.test(filename)) return fail('bad_char')
  const expected = expectedProject === undefined ? null : normalizePypiName(expectedProject)
  const metadata = filename.endsWith('.metadata')
  const name = metadata ? filename.slice(0, -'.metadata'.length) : filename
  if (name.endsWith('.whl')) return parseWheel(name.slice(0, -4), expected, metadata)
  if (name.endsWith('.egg')) return parseEgg(name.slice(0, -4), expected, metadata)
  const ext = SDIST_EXTENSIONS.find((e) => name.endsWith(e))
  if (ext === undefined) return fail('unknown_extension')
  return parseSdist(name.slice(0, -ext.length), expected, metadata)
}
