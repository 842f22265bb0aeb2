/**
 * Filter PyPI's answers under package rules (SPEC §11). PURE: `nowMs` is a parameter.
 *
 * A file is withheld when its project or version is denied or not allowed, when it was uploaded
 * less than min_age ago, or when its upload time is unknown under a min_age (fail closed), or when
 * its name cannot be parsed (no installer can use such a file anyway). Age is judged per file, not
 * per release: a wheel added to an old release last night is as new as a new release.
 *
 * - rewriteSimplePage: the PEP 691 JSON project page (`files` with PEP 700 `upload-time`). The PEP
 *   700 `versions` list loses every version that lost all its files or is denied by version, so
 *   the page stays consistent. pypi-html.ts renders the result as PEP 503 HTML.
 * - rewriteProjectJson: the legacy `/pypi/<p>/json` and `/pypi/<p>/<v>/json` documents.
 *
 * When files existed and none is left (or the project itself is refused), the answer is
 * `withheld_all`: pip shows an empty page only as "from versions: none", while a 403 names the URL.
 * Inputs are never mutated.
 */
import { parseDistFilename } from './pypi-filename.js'
import { isJsonObject, type JsonObject } from './npm-packument.js'
import type { PackageDenyDetail, PackageRules, PackageVerdict } from './rules.js'

export interface WithheldFile {
  readonly filename: string
  /** The version the file belongs to, when it could be read. */
  readonly version: string | null
  readonly detail: PackageDenyDetail | 'unparseable'
}

export interface PypiRewriteOptions {
  /** The project from the request path. */
  readonly project: string
  readonly rules: PackageRules
  readonly nowMs: number
}

/** Files existed and none is left, or the project itself is refused. */
export interface WithheldAll {
  readonly kind: 'withheld_all'
  readonly detail: PackageDenyDetail
  readonly withheld: readonly WithheldFile[]
}

export type SimplePageRewrite =
  | {
      readonly kind: 'rewritten'
      readonly page: JsonObject
      readonly withheld: readonly WithheldFile[]
      readonly withheldVersions: readonly string[]
    }
  | WithheldAll
  | { readonly kind: 'invalid'; readonly problem: 'not_object' | 'bad_files' | 'bad_versions' }

export interface ProjectJsonOptions extends PypiRewriteOptions {
  /** The version of a `/pypi/<p>/<v>/json` request; null or absent for `/pypi/<p>/json`. */
  readonly version?: string | null
}

export type ProjectJsonRewrite =
  | {
      readonly kind: 'rewritten'
      readonly doc: JsonObject
      readonly withheld: readonly WithheldFile[]
      readonly withheldVersions: readonly string[]
      /** Set when `info.version` pointed at a withheld release and was moved (`info`'s other fields are left). */
      readonly infoVersion: { readonly from: string; readonly to: string } | null
    }
  | WithheldAll
  | { readonly kind: 'invalid'; readonly problem: 'not_object' | 'bad_info' | 'bad_releases' | 'bad_urls' }

/** Milliseconds from an ISO 8601 time; PyPI's legacy `upload_time` has no zone and is UTC. */
export function parseUploadTime(v: unknown): number | null {
  if (typeof v !== 'string') return null
  const text = /^\d{4}-\d\d-\d\dT[\d:.]+$/.test(v) ? `${v}Z` : v
  const ms = Date.parse(text)
  return Number.isFinite(ms) ? ms : null
}

/** filename → upload time (ms) of every file on a PEP 691/700 JSON page, for judging downloads. */
export function uploadTimes(page: JsonObject): Map<string, number> {
  const out = new Map<string, number>()
  for (const file of Array.isArray(page.files) ? page.files : []) {
    if (!isJsonObject(file) || typeof file.filename !== 'string') continue
    const ms = parseUploadTime(file['upload-time'])
    if (ms !== null) out.set(file.filename, ms)
  }
  return out
}

/**
 * Judge one file: its version is read from its name and, in the legacy API, also given by the
 * release it is listed under; a file is withheld when any of them is refused.
 */
function judgeFile(
  file: unknown,
  release: string | null,
  uploadKey: 'upload-time' | 'legacy',
  options: PypiRewriteOptions,
): WithheldFile | null {
  if (!isJsonObject(file) || typeof file.filename !== 'string') {
    return { filename: '', version: release, detail: 'unparseable' }
  }
  const filename = file.filename
  const dist = parseDistFilename(filename, options.project)
  if (!dist.ok && release === null) return { filename, version: null, detail: 'unparseable' }
  const versions = [release, dist.ok ? dist.version : null].filter((v): v is string => v !== null)
  const uploaded =
    uploadKey === 'upload-time'
      ? parseUploadTime(file['upload-time'])
      : (parseUploadTime(file.upload_time_iso_8601) ?? parseUploadTime(file.upload_time))
  for (const version of versions) {
    const verdict: PackageVerdict = options.rules.judge(options.project, version, uploaded, options.nowMs)
    if (!verdict.ok) return { filename, version: versions[0] as string, detail: verdict.detail }
  }
  return null
}

function summarise(withheld: readonly WithheldFile[]): PackageDenyDetail {
  // The reason that will change first: a too-new file becomes available by waiting.
  const details = new Set(withheld.map((w) => w.detail))
  if (details.has('too_new')) return 'too_new'
  return details.has('not_allowed') ? 'not_allowed' : 'denied'
}

const fileName = (file: unknown): string =>
  isJsonObject(file) && typeof file.filename === 'string' ? file.filename : ''

/** A refused project: every file is withheld for the project's reason. */
function refuseAll(files: readonly unknown[], detail: PackageDenyDetail): WithheldAll {
  const withheld = files.map((file) => ({ filename: fileName(file), version: null, detail }))
  return { kind: 'withheld_all', detail, withheld }
}

const lower = (v: string): string => v.toLowerCase()

export function rewriteSimplePage(input: unknown, options: PypiRewriteOptions): SimplePageRewrite {
  if (!isJsonObject(input)) return { kind: 'invalid', problem: 'not_object' }
  const files = input.files ?? []
  if (!Array.isArray(files)) return { kind: 'invalid', problem: 'bad_files' }
  const versions = input.versions
  if (versions !== undefined && !(Array.isArray(versions) && versions.every((v) => typeof v === 'string'))) {
    return { kind: 'invalid', problem: 'bad_versions' }
  }
  const whole = options.rules.admits(options.project, null)
  if (!whole.ok) return refuseAll(files, whole.detail)
  const kept: unknown[] = []
  const withheld: WithheldFile[] = []
  const hadFiles = new Set<string>()
  const keptVersions = new Set<string>()
  for (const file of files) {
    const dist = parseDistFilename(fileName(file), options.project)
    if (dist.ok) hadFiles.add(lower(dist.version))
    const refused = judgeFile(file, null, 'upload-time', options)
    if (refused !== null) {
      withheld.push(refused)
      continue
    }
    kept.push(file)
    if (dist.ok) keptVersions.add(lower(dist.version))
  }
  if (files.length > 0 && kept.length === 0) return { kind: 'withheld_all', detail: summarise(withheld), withheld }
  if (withheld.length === 0 && versions === undefined) {
    return { kind: 'rewritten', page: input, withheld, withheldVersions: [] }
  }
  const page: JsonObject = Object.fromEntries(Object.entries(input))
  page.files = kept
  const withheldVersions: string[] = []
  if (versions !== undefined) {
    const left = (versions as string[]).filter((v) => {
      const lost = hadFiles.has(lower(v)) && !keptVersions.has(lower(v))
      const ok = !lost && options.rules.admits(options.project, v).ok
      if (!ok) withheldVersions.push(v)
      return ok
    })
    page.versions = left
  }
  if (withheld.length === 0 && withheldVersions.length === 0) {
    return { kind: 'rewritten', page: input, withheld, withheldVersions }
  }
  return { kind: 'rewritten', page, withheld, withheldVersions }
}

/** The remaining release whose newest file was uploaded last (PEP 440 order is not computed here). */
function newestRelease(releases: ReadonlyMap<string, readonly unknown[]>): string | null {
  let best: string | null = null
  let bestMs = -Infinity
  for (const [version, files] of releases) {
    for (const file of files) {
      const f = isJsonObject(file) ? file : {}
      const ms = parseUploadTime(f.upload_time_iso_8601) ?? parseUploadTime(f.upload_time) ?? -Infinity
      if (best === null || ms > bestMs) {
        best = version
        bestMs = ms
      }
    }
  }
  return best
}

export function rewriteProjectJson(input: unknown, options: ProjectJsonOptions): ProjectJsonRewrite {
  if (!isJsonObject(input)) return { kind: 'invalid', problem: 'not_object' }
  const info = input.info
  if (!isJsonObject(info) || typeof info.version !== 'string') return { kind: 'invalid', problem: 'bad_info' }
  const releases = input.releases ?? {}
  if (!isJsonObject(releases) || !Object.values(releases).every(Array.isArray)) {
    return { kind: 'invalid', problem: 'bad_releases' }
  }
  const urls = input.urls ?? []
  if (!Array.isArray(urls)) return { kind: 'invalid', problem: 'bad_urls' }

  const whole = options.rules.admits(options.project, null)
  if (!whole.ok) return refuseAll([...Object.values(releases).flat(), ...urls], whole.detail)
  const withheld: WithheldFile[] = []
  const withheldVersions: string[] = []
  const filter = (files: readonly unknown[], release: string, sink: WithheldFile[]): unknown[] =>
    files.filter((file) => {
      const refused = judgeFile(file, release, 'legacy', options)
      if (refused !== null) sink.push(refused)
      return refused === null
    })

  const left = new Map<string, unknown[]>()
  let hadFiles = urls.length > 0
  for (const [version, files] of Object.entries(releases) as [string, unknown[]][]) {
    hadFiles ||= files.length > 0
    const kept = filter(files, version, withheld)
    const refused = !options.rules.admits(options.project, version).ok || (files.length > 0 && kept.length === 0)
    if (refused) withheldVersions.push(version)
    else left.set(version, kept)
  }
  const urlsWithheld: WithheldFile[] = []
  const keptUrls = filter(urls, info.version, urlsWithheld)
  // A file in `urls` is also listed under its release: count it once.
  const seen = new Set(withheld.map((w) => w.filename))
  withheld.push(...urlsWithheld.filter((w) => !seen.has(w.filename)))
  const anyLeft = keptUrls.length > 0 || [...left.values()].some((f) => f.length > 0)
  if (hadFiles && !anyLeft) return { kind: 'withheld_all', detail: summarise(withheld), withheld }

  const infoLost =
    !options.rules.admits(options.project, info.version).ok ||
    (urls.length > 0 && keptUrls.length === 0) ||
    withheldVersions.includes(info.version)
  let infoVersion: { from: string; to: string } | null = null
  let newUrls = keptUrls
  if (infoLost) {
    // A version's own document cannot stand for another version; the project document can.
    const to = options.version == null ? newestRelease(left) : null
    if (to === null) return { kind: 'withheld_all', detail: summarise(withheld), withheld }
    infoVersion = { from: info.version, to }
    newUrls = left.get(to) ?? []
  }
  if (withheld.length === 0 && withheldVersions.length === 0 && infoVersion === null) {
    return { kind: 'rewritten', doc: input, withheld, withheldVersions, infoVersion }
  }
  const doc: JsonObject = Object.fromEntries(Object.entries(input))
  if (input.releases !== undefined) doc.releases = Object.fromEntries(left)
  if (input.urls !== undefined || infoVersion !== null) doc.urls = newUrls
  if (infoVersion !== null) doc.info = Object.fromEntries([...Object.entries(info), ['version', infoVersion.to]])
  return { kind: 'rewritten', doc, withheld, withheldVersions, infoVersion }
}
