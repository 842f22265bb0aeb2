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
 *   the version starts at the first dash followed by a digit.
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
    }
  | { readonly ok: false; readonly problem: DistFilenameProblem }

const SDIST_EXTENSIONS = ['.tar.gz', '.zip', '.tar.bz2', '.tar.xz', '.tgz', '.tar']
const VERSION = /^[0-9][A-Za-z0-9.!+_]*$/
const SDIST_VERSION = /^[0-9][A-Za-z0-9.!+_-]*$/
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

function parseSdist(stem: string, expected: string | null, metadata: boolean): DistFilename {
  let cut = -1
  if (expected !== null) {
    for (let i = stem.indexOf('-'); i > 0; i = stem.indexOf('-', i + 1)) {
      if (normalizePypiName(stem.slice(0, i)) === expected) {
        cut = i
        break
      }
    }
    if (cut < 0) return fail('name_mismatch')
  } else {
    cut = stem.search(/-[0-9]/)
    if (cut < 0) return fail('bad_version')
  }
  const version = stem.slice(cut + 1)
  if (!SDIST_VERSION.test(version)) return fail('bad_version')
  return result('sdist', stem.slice(0, cut), version, expected, metadata)
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
