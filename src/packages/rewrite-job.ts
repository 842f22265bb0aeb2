/**
 * One metadata rewrite from upstream bytes to answer bytes: parse, filter under package rules,
 * serialise. PURE (time is in the job). The same function runs on the proxy's thread for small
 * documents and in packument-pool.ts's workers for big ones: parsing and serialising a 15 MiB
 * packument takes far more than an event loop can spare.
 *
 * When nothing is withheld and the answer's form is the document's own, the upstream bytes are
 * returned as they came (`unchanged`), so the common case costs a parse and no serialisation.
 */
import { rewritePackument, toAbbreviated, publishTimes, isJsonObject, type JsonObject } from './npm-packument.js'
import type { TagMove } from './npm-dist-tags.js'
import { rewriteProjectJson, rewriteSimplePage, uploadTimes } from './pypi.js'
import { renderSimpleHtml } from './pypi-html.js'
import type { PackageDenyDetail, PackageRules } from './rules.js'

/** Documents larger than this are refused before parsing (`@types/node`'s is ~10-15 MiB). */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

export type RewriteFormat =
  /** npm packument in, full packument out. */
  | 'npm_full'
  /** npm packument (full, or abbreviated when no publish time is needed) in, abbreviated out. */
  | 'npm_abbreviated'
  /** npm full packument in, publish times out (for judging a tarball); no body. */
  | 'npm_times'
  /** PEP 691 JSON page in, JSON out. */
  | 'pypi_simple_json'
  /** PEP 691 JSON page in, PEP 503 HTML out. */
  | 'pypi_simple_html'
  /** `/pypi/<p>/json` or `/pypi/<p>/<v>/json` in and out. */
  | 'pypi_project_json'

export interface RewriteJob {
  readonly format: RewriteFormat
  /** npm package name or PyPI project, from the request path. */
  readonly name: string
  /** For `pypi_project_json`: the version of a `/pypi/<p>/<v>/json` request. */
  readonly version?: string | null
  readonly nowMs: number
}

export type RewriteOutcome =
  | {
      readonly kind: 'rewritten'
      /** The answer's bytes (UTF-8); empty for `npm_times`. */
      readonly body: Uint8Array
      /** True when `body` is the upstream bytes themselves. */
      readonly unchanged: boolean
      /** npm: versions withheld; PyPI: file names withheld. */
      readonly withheld: readonly string[]
      /** Versions no longer offered (npm: same as withheld; PyPI: releases that lost every file). */
      readonly withheldVersions: readonly string[]
      readonly tagsMoved: Readonly<Record<string, TagMove>>
      readonly tagsDropped: readonly string[]
      readonly infoVersion: { readonly from: string; readonly to: string } | null
      /** npm: version → publish time; PyPI Simple: file name → upload time (ms), for a cache. */
      readonly times: readonly (readonly [string, number])[]
    }
  | {
      readonly kind: 'withheld_all'
      readonly detail: PackageDenyDetail
      readonly why: 'no_version_left' | 'no_stable_left'
      readonly withheld: readonly string[]
      readonly times: readonly (readonly [string, number])[]
    }
  | { readonly kind: 'invalid'; readonly problem: 'too_large' | 'not_json' | 'bad_document' | 'bad_rules' }
  /** Only from the pool: the worker died with the job, or the pool was closed. Fail closed. */
  | { readonly kind: 'failed'; readonly detail: 'worker_failed' | 'closed' }

const UTF8 = new TextDecoder('utf-8', { fatal: true })
const ENCODER = new TextEncoder()

const encodeJson = (doc: unknown): Uint8Array => ENCODER.encode(JSON.stringify(doc))

function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(UTF8.decode(bytes)) as unknown
  } catch {
    return undefined
  }
}

const BAD_DOCUMENT: RewriteOutcome = { kind: 'invalid', problem: 'bad_document' }

function rewritten(
  body: Uint8Array,
  unchanged: boolean,
  fields: Partial<Omit<Extract<RewriteOutcome, { kind: 'rewritten' }>, 'kind' | 'body' | 'unchanged'>>,
): RewriteOutcome {
  return {
    kind: 'rewritten',
    body,
    unchanged,
    withheld: fields.withheld ?? [],
    withheldVersions: fields.withheldVersions ?? fields.withheld ?? [],
    tagsMoved: fields.tagsMoved ?? {},
    tagsDropped: fields.tagsDropped ?? [],
    infoVersion: fields.infoVersion ?? null,
    times: fields.times ?? [],
  }
}

function runNpm(bytes: Uint8Array, doc: JsonObject, job: RewriteJob, rules: PackageRules): RewriteOutcome {
  const times = [...publishTimes(doc)]
  if (job.format === 'npm_times') return rewritten(new Uint8Array(0), false, { times })
  const r = rewritePackument(doc, { name: job.name, rules, nowMs: job.nowMs })
  if (r.kind === 'invalid') return BAD_DOCUMENT
  if (r.kind === 'withheld_all')
    return { kind: 'withheld_all', detail: r.detail, why: r.why, withheld: r.withheld, times }
  const same = r.withheld.length === 0 && job.format === 'npm_full'
  const body = same ? bytes : encodeJson(job.format === 'npm_abbreviated' ? toAbbreviated(r.doc) : r.doc)
  return rewritten(body, same, { withheld: r.withheld, tagsMoved: r.tagsMoved, tagsDropped: r.tagsDropped, times })
}

function runPypi(bytes: Uint8Array, doc: JsonObject, job: RewriteJob, rules: PackageRules): RewriteOutcome {
  const options = { project: job.name, rules, nowMs: job.nowMs }
  if (job.format === 'pypi_project_json') {
    const r = rewriteProjectJson(doc, { ...options, version: job.version ?? null })
    if (r.kind === 'invalid') return BAD_DOCUMENT
    const withheld = r.withheld.map((w) => w.filename)
    if (r.kind === 'withheld_all')
      return { kind: 'withheld_all', detail: r.detail, why: 'no_version_left', withheld, times: [] }
    const same = r.doc === doc
    return rewritten(same ? bytes : encodeJson(r.doc), same, {
      withheld,
      withheldVersions: r.withheldVersions,
      infoVersion: r.infoVersion,
    })
  }
  const times = [...uploadTimes(doc)]
  const r = rewriteSimplePage(doc, options)
  if (r.kind === 'invalid') return BAD_DOCUMENT
  const withheld = r.withheld.map((w) => w.filename)
  if (r.kind === 'withheld_all')
    return { kind: 'withheld_all', detail: r.detail, why: 'no_version_left', withheld, times }
  const fields = { withheld, withheldVersions: r.withheldVersions, times }
  if (job.format === 'pypi_simple_html')
    return rewritten(ENCODER.encode(renderSimpleHtml(r.page, job.name)), false, fields)
  const same = r.page === doc
  return rewritten(same ? bytes : encodeJson(r.page), same, fields)
}

/** Parse `bytes`, rewrite under `rules` (compiled for the job's ecosystem), serialise. */
export function runRewriteJob(bytes: Uint8Array, job: RewriteJob, rules: PackageRules): RewriteOutcome {
  if (bytes.byteLength > MAX_DOCUMENT_BYTES) return { kind: 'invalid', problem: 'too_large' }
  const npm = job.format.startsWith('npm_')
  if (rules.ecosystem !== (npm ? 'npm' : 'pypi')) return { kind: 'invalid', problem: 'bad_rules' }
  const doc = parse(bytes)
  if (doc === undefined) return { kind: 'invalid', problem: 'not_json' }
  if (!isJsonObject(doc)) return BAD_DOCUMENT
  return npm ? runNpm(bytes, doc, job, rules) : runPypi(bytes, doc, job, rules)
}
