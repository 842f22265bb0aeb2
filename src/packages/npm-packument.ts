/**
 * Rewrite an npm package document under package rules (SPEC §11). PURE: `nowMs` is a parameter.
 *
 * Versions that are denied, not allowed, or younger than min_age are removed from `versions` and
 * `time` (`created`, `modified` and other non-version keys stay), and dist-tags that pointed at them
 * move (npm-dist-tags.ts). Works on the full document and, when no publish time is needed
 * (rules.needsPublishTimes(name) is false), on the abbreviated one, which has no `time`.
 *
 * When nothing installable is left, the answer is `withheld_all` rather than a document: given a
 * packument with no versions npm says "No versions available for pkg" (ENOVERSIONS), and without
 * `latest` `npm install pkg` says "No matching version found for pkg@latest" (ETARGET); pnpm and
 * yarn say the same kind of thing. Nothing there says it is policy. A 403 with a JSON `error` is
 * printed by npm as "403 Forbidden - GET …/pkg - <error>", which names the reason. That case covers
 * every version withheld (`no_version_left`) and a stable `latest` withheld with no stable version
 * left to carry it (`no_stable_left`): a registry document must have a `latest` for plain installs.
 *
 * Inputs are never mutated; the result shares unchanged version objects with the input.
 */
import type { PackageDenyDetail, PackageRules } from './rules.js'
import { planDistTags, sortRemaining, type TagMove } from './npm-dist-tags.js'

export type JsonObject = Record<string, unknown>

export type PackumentProblem = 'not_object' | 'bad_versions' | 'bad_dist_tags' | 'bad_time'

export type PackumentRewrite =
  | {
      readonly kind: 'rewritten'
      /** The input itself when nothing was withheld. */
      readonly doc: JsonObject
      readonly withheld: readonly string[]
      readonly tagsMoved: Readonly<Record<string, TagMove>>
      readonly tagsDropped: readonly string[]
    }
  | {
      readonly kind: 'withheld_all'
      readonly detail: PackageDenyDetail
      readonly why: 'no_version_left' | 'no_stable_left'
      readonly withheld: readonly string[]
    }
  | { readonly kind: 'invalid'; readonly problem: PackumentProblem }

export interface PackumentRewriteOptions {
  /** The package name from the request path (not the document's, which upstream controls). */
  readonly name: string
  readonly rules: PackageRules
  readonly nowMs: number
}

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

const optionalObject = (v: unknown): JsonObject | null | undefined =>
  v === undefined ? {} : isJsonObject(v) ? v : null

/**
 * Publish time of every listed version, in ms. A version without its own valid `time` entry gets
 * the document's last modification (`time.modified`, or `modified` in the abbreviated form): no
 * version can have been published after the document last changed, so that is a safe upper bound
 * for a min_age check. A version with neither is absent (unknown: judged too new).
 */
export function publishTimes(doc: JsonObject): Map<string, number> {
  const out = new Map<string, number>()
  const versions = isJsonObject(doc.versions) ? doc.versions : {}
  const time = isJsonObject(doc.time) ? doc.time : {}
  const parse = (v: unknown): number | null => {
    const ms = typeof v === 'string' ? Date.parse(v) : NaN
    return Number.isFinite(ms) ? ms : null
  }
  const fallback = parse(time.modified) ?? parse(doc.modified)
  for (const version of Object.keys(versions)) {
    const own = Object.hasOwn(time, version) ? parse(time[version]) : null
    const ms = own ?? fallback
    if (ms !== null) out.set(version, ms)
  }
  return out
}

function summarise(counts: Map<PackageDenyDetail, number>, pkg: PackageDenyDetail | null): PackageDenyDetail {
  if (pkg !== null) return pkg
  // The reason that will change first: a too-new version becomes installable by waiting.
  if (counts.has('too_new')) return 'too_new'
  return counts.has('not_allowed') ? 'not_allowed' : 'denied'
}

export function rewritePackument(input: unknown, options: PackumentRewriteOptions): PackumentRewrite {
  if (!isJsonObject(input)) return { kind: 'invalid', problem: 'not_object' }
  const versions = optionalObject(input.versions)
  if (versions == null) return { kind: 'invalid', problem: 'bad_versions' }
  const tags = optionalObject(input['dist-tags'])
  if (tags == null) return { kind: 'invalid', problem: 'bad_dist_tags' }
  const time = input.time === undefined ? undefined : optionalObject(input.time)
  if (time === null) return { kind: 'invalid', problem: 'bad_time' }

  const { name, rules, nowMs } = options
  const times = rules.needsPublishTimes(name) ? publishTimes(input) : new Map<string, number>()
  const withheld: string[] = []
  const counts = new Map<PackageDenyDetail, number>()
  const kept: string[] = []
  for (const version of Object.keys(versions)) {
    const verdict = rules.judge(name, version, times.get(version) ?? null, nowMs)
    if (verdict.ok) {
      kept.push(version)
      continue
    }
    withheld.push(version)
    counts.set(verdict.detail, (counts.get(verdict.detail) ?? 0) + 1)
  }
  if (withheld.length === 0) return { kind: 'rewritten', doc: input, withheld, tagsMoved: {}, tagsDropped: [] }

  const whole = rules.judge(name, null, null, nowMs)
  const detail = summarise(counts, whole.ok ? null : whole.detail)
  if (kept.length === 0) return { kind: 'withheld_all', detail, why: 'no_version_left', withheld }

  const gone = new Set(withheld)
  const plan = planDistTags(tags, gone, sortRemaining(kept))
  if (!plan.latestPlaced) return { kind: 'withheld_all', detail, why: 'no_stable_left', withheld }

  // Object.fromEntries everywhere: keys come from upstream, and a `__proto__` key must stay data.
  const doc: JsonObject = Object.fromEntries(Object.entries(input))
  doc.versions = Object.fromEntries(kept.map((v) => [v, versions[v]]))
  doc['dist-tags'] = plan.tags
  if (time !== undefined) doc.time = Object.fromEntries(Object.entries(time).filter(([k]) => !gone.has(k)))
  return {
    kind: 'rewritten',
    doc,
    withheld,
    tagsMoved: Object.fromEntries(plan.moved),
    tagsDropped: plan.dropped,
  }
}

/**
 * The manifest a `/<name>/<spec>` request asks for, from a (rewritten) packument: `spec` is a
 * dist-tag or an exact version. null when it names nothing that is left.
 */
export function selectVersionDoc(doc: JsonObject, spec: string): JsonObject | null {
  const versions = isJsonObject(doc.versions) ? doc.versions : {}
  const tags = isJsonObject(doc['dist-tags']) ? doc['dist-tags'] : {}
  const tagged = Object.hasOwn(tags, spec) ? tags[spec] : undefined
  const version = typeof tagged === 'string' ? tagged : spec
  const manifest = Object.hasOwn(versions, version) ? versions[version] : undefined
  return isJsonObject(manifest) ? manifest : null
}

/**
 * The fields of a version that the abbreviated (`application/vnd.npm.install-v1+json`, "corgi")
 * form keeps: npm's registry documentation lists name, version, the dependency maps, bin,
 * directories, dist, engines and _hasShrinkwrap; the registry also serves deprecated,
 * peerDependenciesMeta, cpu, os, funding and hasInstallScript, and npm reads acceptDependencies.
 * libc is kept because pnpm filters on it. `bundledDependencies` is the older spelling.
 */
export const ABBREVIATED_VERSION_FIELDS: readonly string[] = Object.freeze([
  'name',
  'version',
  'deprecated',
  'dependencies',
  'optionalDependencies',
  'devDependencies',
  'bundleDependencies',
  'bundledDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'acceptDependencies',
  'bin',
  'directories',
  'dist',
  'engines',
  'cpu',
  'os',
  'libc',
  'funding',
  '_hasShrinkwrap',
  'hasInstallScript',
])

const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall']

function abbreviateVersion(manifest: unknown): unknown {
  if (!isJsonObject(manifest)) return manifest
  const out: [string, unknown][] = ABBREVIATED_VERSION_FIELDS.filter((f) => Object.hasOwn(manifest, f)).map((f) => [
    f,
    manifest[f],
  ])
  // The registry computes hasInstallScript at publish; a full document may carry only `scripts`.
  const scripts = manifest.scripts
  if (!Object.hasOwn(manifest, 'hasInstallScript') && isJsonObject(scripts)) {
    if (INSTALL_SCRIPTS.some((s) => Object.hasOwn(scripts, s))) out.push(['hasInstallScript', true])
  }
  return Object.fromEntries(out)
}

/** The abbreviated form of a full (possibly rewritten) packument: name, modified, dist-tags, versions. */
export function toAbbreviated(full: JsonObject): JsonObject {
  const time = isJsonObject(full.time) ? full.time : {}
  const modified = time.modified ?? full.modified
  const versions = isJsonObject(full.versions) ? full.versions : {}
  const out: [string, unknown][] = [['name', full.name]]
  if (modified !== undefined) out.push(['modified', modified])
  out.push(['dist-tags', full['dist-tags'] ?? {}])
  out.push(['versions', Object.fromEntries(Object.entries(versions).map(([v, m]) => [v, abbreviateVersion(m)]))])
  return Object.fromEntries(out)
}
