import type { IncomingMessage } from 'node:http'
import { promisify } from 'node:util'
import { brotliDecompress, gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib'
import { LRUCache } from 'lru-cache'
import type { UpstreamFailureKind } from '../net/dial.js'
import { parseAuthority } from '../net/host.js'
import { resolveChecked, type ResolveSettings } from '../net/resolve.js'
import type { PackageControl } from '../policy/compiled.js'
import type { DenyDecision, RuleId } from '../policy/types.js'
import { classifyNpmPath } from '../packages/npm-path.js'
import { isJsonObject, selectVersionDoc } from '../packages/npm-packument.js'
import { createPackumentPool, type PackumentPool } from '../packages/packument-pool.js'
import { classifyPypiPath, refusedAlternative } from '../packages/pypi-path.js'
import { MAX_DOCUMENT_BYTES, runRewriteJob, type RewriteFormat, type RewriteOutcome } from '../packages/rewrite-job.js'
import {
  compileAllPackageRules,
  normalizePypiName,
  type PackageDenyDetail,
  type PackageRules,
} from '../packages/rules.js'
import type { Approval } from '../policy/approvals.js'
import type { PackageFacts } from '../telemetry/events.js'
import {
  encodedBody,
  endToEnd,
  type Forwarder,
  type ForwardTarget,
  type InjectedHeader,
  type WholeAnswer,
} from './forward.js'
import { maskFields, maskSecrets } from './response-redact.js'

/**
 * Package rules on a registry (SPEC §11): the I/O edge of src/packages/. Before a registry request
 * goes upstream it is classified by path (npm: packument, version document, tarball; PyPI: Simple
 * page, legacy JSON, distribution file) and:
 *  - a package the rules deny or do not allow is refused by name (`denied_package`, detail `denied`
 *    or `not_allowed`), whatever is asked of it;
 *  - metadata from which versions may be withheld is fetched whole (uncompressed, never a 304),
 *    rewritten (off the event loop when large) and answered by the proxy with its own length;
 *    versions removed from a document are counted in the record;
 *  - a tarball or file is judged by its version's publish time (`too_new` under `min_age`), read
 *    from the publish-time cache or, on a miss, from the package's metadata fetched once;
 *  - a path that cannot be read as a package request is refused: a registry reads it somehow, and
 *    what it reads could be a package the rules refuse.
 * Anything the rules cannot judge (unreadable metadata, a failed rewrite) fails closed.
 *
 * Cache: publish times (npm) and upload times (PyPI) per package, up to PUBLISH_TIME_PACKAGES
 * packages for PUBLISH_TIME_TTL_MS, filled from every metadata answer the gate reads. A version the
 * cached entry does not know (published since) is looked up again, at most once per entry.
 */
export type PackageGateOutcome =
  /** Forward as usual. */
  | { readonly kind: 'pass'; readonly pkg?: PackageFacts }
  | { readonly kind: 'deny'; readonly decision: DenyDecision; readonly pkg?: PackageFacts }
  /** The proxy's own answer (rewritten metadata), to be written as it is. */
  | { readonly kind: 'answer'; readonly pkg: PackageFacts; readonly answer: GateAnswer }

export interface GateAnswer {
  readonly status: number
  /** End-to-end fields, flat; Content-Length is the body's. */
  readonly headers: readonly string[]
  readonly body: Buffer
}

export interface PackageGuard {
  gate(
    req: IncomingMessage,
    target: ForwardTarget,
    control: PackageControl,
    ruleId: RuleId | null,
    upstream: ResolveSettings,
    /** The agent's active approvals on this host: an approved download's version is not withheld. */
    approvals: readonly Approval[],
  ): Promise<PackageGateOutcome>
  close(): void
}

const PUBLISH_TIME_PACKAGES = 10_000
const PUBLISH_TIME_TTL_MS = 60 * 60_000
/** Documents up to this size are rewritten on the event loop (a few ms); larger ones in a worker. */
const INLINE_REWRITE_BYTES = 256 * 1024

/** Request fields that would make the upstream answer something other than the whole document. */
const NOT_FORWARDED = [
  'accept',
  'accept-encoding',
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'range',
  'content-length',
]
/** Answer fields that describe the upstream's bytes, not the rewritten ones. */
const NOT_RELAYED = new Set(['content-length', 'content-encoding', 'content-type', 'etag', 'content-md5', 'digest'])

const gunzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gunzip)
const inflateAsync = promisify<Buffer, ZlibOptions, Buffer>(inflate)
const inflateRawAsync = promisify<Buffer, ZlibOptions, Buffer>(inflateRaw)
const brotliDecompressAsync = promisify<Buffer, ZlibOptions, Buffer>(brotliDecompress)

const NPM_ABBREVIATED = 'application/vnd.npm.install-v1+json'
const PYPI_JSON = 'application/vnd.pypi.simple.v1+json'

interface TimesEntry {
  readonly times: ReadonlyMap<string, number>
  /** Set once a miss has been looked up again, so a version that does not exist costs one fetch, not one per request. */
  refreshed: boolean
}

export function createPackageGuard(forwarder: Forwarder, onWorkerError: (err: unknown) => void): PackageGuard {
  let pool: PackumentPool | null = null
  const times = new LRUCache<string, TimesEntry>({ max: PUBLISH_TIME_PACKAGES, ttl: PUBLISH_TIME_TTL_MS })

  const rewrite = (bytes: Buffer, format: RewriteFormat, name: string, rules: PackageRules, version: string | null) => {
    const job = { format, name, version, nowMs: Date.now() }
    if (bytes.length <= INLINE_REWRITE_BYTES) return Promise.resolve(runRewriteJob(bytes, job, rules))
    pool ??= createPackumentPool(1, onWorkerError)
    return pool.rewrite(bytes, { ...job, rules })
  }
  const remember = (key: string, outcome: RewriteOutcome): void => {
    if ((outcome.kind === 'rewritten' || outcome.kind === 'withheld_all') && outcome.times.length > 0)
      times.set(key, { times: new Map(outcome.times), refreshed: false })
  }

  /** The publish time of `item` (npm version, PyPI file name), from the cache or from `fetchTimes`. */
  const timeOf = async (
    key: string,
    item: string,
    fetchTimes: () => Promise<ReadonlyMap<string, number> | Refusal>,
  ): Promise<number | null | Refusal> => {
    const cached = times.get(key)
    if (cached !== undefined && (cached.times.has(item) || cached.refreshed)) return cached.times.get(item) ?? null
    const fetched = await fetchTimes()
    if (fetched instanceof Refusal) return fetched
    times.set(key, { times: fetched, refreshed: cached !== undefined })
    return fetched.get(item) ?? null
  }

  return {
    async gate(req, target, control, ruleId, upstream, approvals) {
      const method = req.method ?? 'GET'
      if (method !== 'GET' && method !== 'HEAD') return { kind: 'pass' }
      const ctx: GateContext = { req, target, control, ruleId, upstream, head: method === 'HEAD', approvals }
      const outcome = await (control.ecosystem === 'npm' ? gateNpm(ctx) : gatePypi(ctx))
      // The metadata was fetched with the injected credentials: an echo of one (a 401 quoting the
      // request, a description) is masked as in every forwarded answer.
      const injected = target.inject ?? []
      if (outcome.kind !== 'answer' || injected.length === 0) return outcome
      // One left compressed (a coding decodeDocument does not know) would carry an echo past the mask.
      if (encodedBody(outcome.answer.headers)) return upstreamFailed('encoded_answer', outcome.pkg)
      return { ...outcome, answer: maskAnswer(outcome.answer, injected) }
    },
    close() {
      pool?.close()
      times.clear()
    },
  }

  async function fetchDocument(
    ctx: GateContext,
    target: ForwardTarget,
    accept: string,
    sameOrigin: boolean,
  ): Promise<WholeAnswer> {
    // The client's own fields (a private registry's credentials) go only to the host they were sent to;
    // an injected field replaces the client's of that name (addProxyFields adds it), as on any request.
    const injected = (target.inject ?? []).map((h) => h.name)
    const headers = sameOrigin
      ? endToEnd(ctx.req.rawHeaders, new Set(['host', 'via', ...NOT_FORWARDED, ...injected]))
      : []
    headers.push('accept', accept, 'accept-encoding', 'identity')
    if (!sameOrigin) headers.push('user-agent', 'portcullis')
    return decodeDocument(await forwarder.fetchWhole(target, { method: 'GET', headers }, MAX_DOCUMENT_BYTES))
  }

  async function gateNpm(ctx: GateContext): Promise<PackageGateOutcome> {
    const rules = ctx.control.rules
    const req = classifyNpmPath(ctx.target.requestTarget)
    if (req.kind === 'other') return { kind: 'pass' }
    if (req.kind === 'unparseable') return refuse(ctx, 'unparseable_path', undefined, unparseableSentence(req.problem))
    const version = req.kind === 'packument' || req.kind === 'dist_tags' ? null : req.version
    const pkg: PackageFacts = { registry: 'npm', name: req.name, version }
    const byName = judgeByName(ctx, pkg)
    if (byName !== null) return byName
    const key = `npm\0${ctx.target.host}:${ctx.target.port}\0${req.name}`
    const packumentTarget = { ...ctx.target, requestTarget: `/${req.name.replace('/', '%2f')}` }
    const fetchTimes = async (): Promise<ReadonlyMap<string, number> | Refusal> => {
      const doc = await fetchDocument(ctx, packumentTarget, 'application/json', true)
      if (doc.kind === 'failed') return new Refusal(upstreamFailed(doc.failure, pkg))
      if (doc.kind !== 'answer' || doc.status !== 200) return new Refusal(refuse(ctx, 'unreadable_metadata', pkg))
      const outcome = await rewrite(doc.body, 'npm_times', req.name, rules, null)
      if (outcome.kind !== 'rewritten') return new Refusal(refuse(ctx, 'unreadable_metadata', pkg))
      return new Map(outcome.times)
    }
    if (req.kind === 'tarball' || (req.kind === 'version_doc' && req.version !== null)) {
      if (!rules.needsPublishTimes(req.name)) return { kind: 'pass', pkg }
      const at = await timeOf(key, version as string, fetchTimes)
      if (at instanceof Refusal) return at.outcome
      const verdict = withApproved(rules, req.name, ctx.approvals).judge(req.name, version, at, Date.now())
      return verdict.ok
        ? { kind: 'pass', pkg }
        : refuse(ctx, verdict.detail, pkg, tooNewSentence(rules, req.name, version, at))
    }
    if (ctx.head) return { kind: 'pass', pkg }
    // A packument, its dist-tags, or a version document by dist-tag (resolved against the rewritten packument).
    const abbreviated = req.kind === 'packument' && acceptsAbbreviated(ctx.req.headers.accept)
    const format: RewriteFormat = abbreviated ? 'npm_abbreviated' : 'npm_full'
    // Publish times are only in the full document.
    const accept = abbreviated && !rules.needsPublishTimes(req.name) ? NPM_ABBREVIATED : 'application/json'
    const doc = await fetchDocument(ctx, packumentTarget, accept, true)
    if (doc.kind === 'failed') return upstreamFailed(doc.failure, pkg)
    if (doc.kind === 'too_large') return refuse(ctx, 'metadata_too_large', pkg)
    if (doc.status !== 200) return { kind: 'answer', pkg, answer: relay(doc) }
    const outcome = await rewrite(doc.body, format, req.name, withApproved(rules, req.name, ctx.approvals), null)
    // The abbreviated form has no `time`: its `modified` stands in for every version there (an upper
    // bound, enough for these rules, which need no times), and cached it would make every version look
    // as new as the latest to another agent's min_age. Only the full document's times are kept.
    if (accept !== NPM_ABBREVIATED) remember(key, outcome)
    if (outcome.kind === 'withheld_all')
      return refuse(ctx, outcome.detail, { ...pkg, withheld: outcome.withheld.length }, withheldAllSentence(outcome))
    if (outcome.kind !== 'rewritten') return refuse(ctx, 'unreadable_metadata', pkg)
    const counted = { ...pkg, withheld: outcome.withheld.length }
    if (req.kind === 'dist_tags') {
      const full: unknown = JSON.parse(Buffer.from(outcome.body).toString('utf8'))
      const tags = isJsonObject(full) && isJsonObject(full['dist-tags']) ? full['dist-tags'] : {}
      if (req.tag === undefined)
        return { kind: 'answer', pkg: counted, answer: json(doc, Buffer.from(JSON.stringify(tags))) }
      // One tag (`npm dist-tag ls` reads the listing; the registry also answers a tag alone): its version
      // as a JSON string, or not found when the rules dropped it with every version it could name.
      const one = Object.hasOwn(tags, req.tag) ? tags[req.tag] : undefined
      return {
        kind: 'answer',
        pkg: counted,
        answer: typeof one === 'string' ? json(doc, Buffer.from(JSON.stringify(one))) : tagNotFound(req.tag),
      }
    }
    if (req.kind === 'packument')
      return {
        kind: 'answer',
        pkg: counted,
        answer: rewritten(doc, outcome, abbreviated ? NPM_ABBREVIATED : 'application/json'),
      }
    const full: unknown = JSON.parse(Buffer.from(outcome.body).toString('utf8'))
    const picked = isJsonObject(full) ? selectVersionDoc(full, req.spec) : null
    if (picked === null) {
      // The tag was dropped with the versions it could point at, or the registry never had it.
      if (!outcome.tagsDropped.includes(req.spec))
        return { kind: 'answer', pkg: counted, answer: tagNotFound(req.spec) }
      const tagged = taggedVersion(doc.body, req.spec)
      const at = tagged === null ? null : (new Map(outcome.times).get(tagged) ?? null)
      const verdict = withApproved(rules, req.name, ctx.approvals).judge(req.name, tagged, at, Date.now())
      const detail = verdict.ok ? 'too_new' : verdict.detail
      return refuse(
        ctx,
        detail,
        { ...counted, version: tagged },
        detail === 'too_new' ? tooNewSentence(rules, req.name, tagged, at) : undefined,
      )
    }
    return { kind: 'answer', pkg: counted, answer: json(doc, Buffer.from(JSON.stringify(picked))) }
  }

  async function gatePypi(ctx: GateContext): Promise<PackageGateOutcome> {
    const rules = ctx.control.rules
    const req = classifyPypiPath(ctx.target.requestTarget)
    if (req.kind === 'other') return { kind: 'pass' }
    if (req.kind === 'unparseable') return refuse(ctx, 'unparseable_path', undefined, unparseableSentence(req.problem))
    const version = req.kind === 'simple_project' ? null : req.version
    const pkg: PackageFacts = { registry: 'pypi', name: req.project, version }
    // A file whose name could be another project's too (an old sdist, `py-3d-1.0.tar.gz`) is refused
    // if any of them is denied. One whose other reading is only off the allow list is the admitted
    // project's when its index page lists the file (below): a file name is one project's on PyPI.
    const other = refusedAlternative(req, ctx.control.rules)
    const otherRefusal =
      other === null
        ? null
        : refuse(ctx, other.detail, { registry: 'pypi', name: other.project, version: other.version })
    if (other !== null && other.detail !== 'not_allowed') return otherRefusal as PackageGateOutcome
    const byName = judgeByName(ctx, pkg)
    if (byName !== null && (byName.kind !== 'pass' || otherRefusal === null)) return byName
    const index = await indexTarget(ctx)
    if (index instanceof Refusal) return index.outcome
    const key = `pypi\0${index.target.host}:${index.target.port}\0${req.project}`
    if (req.kind === 'file') {
      const needsTimes = rules.needsPublishTimes(req.project)
      if (!needsTimes && otherRefusal === null) return { kind: 'pass', pkg }
      // A PEP 658 `.metadata` file was uploaded with its distribution.
      const file = req.metadata ? req.filename.replace(/\.metadata$/, '') : req.filename
      const at = await timeOf(key, file, async () => {
        // On the rule's index host (pypi.org for files.pythonhosted.org) the Simple API is at the root;
        // a private index serving its files under a prefix serves its pages under the same one.
        const prefix = index.sameOrigin ? req.indexPrefix : ''
        const pageTarget = { ...index.target, requestTarget: `${prefix}/simple/${req.project}/` }
        const doc = await fetchDocument(ctx, pageTarget, PYPI_JSON, index.sameOrigin)
        if (doc.kind === 'failed') return new Refusal(upstreamFailed(doc.failure, pkg))
        if (doc.kind !== 'answer' || doc.status !== 200) return new Refusal(refuse(ctx, 'unreadable_metadata', pkg))
        const outcome = await rewrite(doc.body, 'pypi_simple_json', req.project, rules, null)
        if (outcome.kind !== 'rewritten' && outcome.kind !== 'withheld_all')
          return new Refusal(refuse(ctx, 'unreadable_metadata', pkg))
        return new Map(outcome.times)
      })
      if (at instanceof Refusal) return at.outcome
      // Not on the admitted project's page (with its upload time): it may be the other project's.
      if (otherRefusal !== null && at === null) return otherRefusal
      if (!needsTimes) return { kind: 'pass', pkg }
      const verdict = withApproved(rules, req.project, ctx.approvals).judge(req.project, version, at, Date.now())
      return verdict.ok
        ? { kind: 'pass', pkg }
        : refuse(ctx, verdict.detail, pkg, tooNewSentence(rules, req.project, version, at))
    }
    if (ctx.head) return { kind: 'pass', pkg }
    const html = req.kind === 'simple_project' && !acceptsPypiJson(ctx.req.headers.accept)
    const format: RewriteFormat =
      req.kind === 'legacy_json' ? 'pypi_project_json' : html ? 'pypi_simple_html' : 'pypi_simple_json'
    const doc = await fetchDocument(ctx, ctx.target, req.kind === 'legacy_json' ? 'application/json' : PYPI_JSON, true)
    if (doc.kind === 'failed') return upstreamFailed(doc.failure, pkg)
    if (doc.kind === 'too_large') return refuse(ctx, 'metadata_too_large', pkg)
    if (doc.status !== 200) return { kind: 'answer', pkg, answer: relay(doc) }
    const outcome = await rewrite(
      doc.body,
      format,
      req.project,
      withApproved(rules, req.project, ctx.approvals),
      req.kind === 'legacy_json' ? req.version : null,
    )
    if (req.kind === 'simple_project' && index.sameOrigin) remember(key, outcome)
    if (outcome.kind === 'withheld_all') {
      const sentence = withheldAllSentence(outcome, req.kind === 'legacy_json' ? req.version : null)
      return refuse(ctx, outcome.detail, { ...pkg, withheld: outcome.withheld.length }, sentence)
    }
    if (outcome.kind !== 'rewritten') return refuse(ctx, 'unreadable_metadata', pkg)
    const type = req.kind === 'legacy_json' ? 'application/json' : html ? 'text/html; charset=utf-8' : PYPI_JSON
    return { kind: 'answer', pkg: { ...pkg, withheld: outcome.withheld.length }, answer: rewritten(doc, outcome, type) }
  }
}

/**
 * What the rules say before any metadata is read: a package denied or not allowed (by name, or this
 * version by entry) is refused; one from which no version can be withheld passes untouched. Null: read on.
 */
function judgeByName(ctx: GateContext, pkg: PackageFacts): PackageGateOutcome | null {
  const rules = ctx.control.rules
  const admitted = rules.admits(pkg.name, pkg.version)
  if (!admitted.ok) return refuse(ctx, admitted.detail, pkg)
  return rules.filtersVersions(pkg.name) ? null : { kind: 'pass', pkg }
}

interface GateContext {
  readonly req: IncomingMessage
  readonly target: ForwardTarget
  readonly control: PackageControl
  readonly ruleId: RuleId | null
  readonly upstream: ResolveSettings
  readonly head: boolean
  readonly approvals: readonly Approval[]
}

/**
 * The rules, with what an admin approved of this package exempt from min_age: a download approved
 * as `exact` (a tarball, a file) exempts its version, one approved as `path-prefix` (every download
 * of the package) the package. So an approved hot fix is offered in the metadata too, and `npm
 * install x@<version>` finds it, not only a lockfile's direct download. Deny and allow lists stay.
 */
function withApproved(rules: PackageRules, name: string, approvals: readonly Approval[]): PackageRules {
  const extra: string[] = []
  for (const a of approvals) {
    if (a.path === null || a.scope === 'host') continue
    const asked = packageOfPath(rules.ecosystem, a.path)
    if (asked === null || asked.version === null) continue
    const same =
      rules.ecosystem === 'npm' ? asked.name === name : normalizePypiName(asked.name) === normalizePypiName(name)
    if (!same) continue
    extra.push(
      a.scope === 'exact' ? `${asked.name}${rules.ecosystem === 'npm' ? '@' : '=='}${asked.version}` : asked.name,
    )
  }
  if (extra.length === 0) return rules
  const compiled = compileAllPackageRules(
    rules.ecosystem,
    rules.blocks.map((block) => ({ ...block, minAgeExempt: [...block.minAgeExempt, ...extra] })),
  )
  return compiled.ok ? compiled.rules : rules
}

/** The package a registry request asks for, as its record names it (null: not a package request). */
export function packageOfRequest(control: PackageControl, requestTarget: string): PackageFacts | null {
  const asked = packageOfPath(control.ecosystem, requestTarget)
  return asked === null ? null : { registry: control.ecosystem, ...asked }
}

/** The package and version a registry path asks for (null: not a package request). */
function packageOfPath(ecosystem: 'npm' | 'pypi', path: string): { name: string; version: string | null } | null {
  if (ecosystem === 'npm') {
    const r = classifyNpmPath(path)
    if (r.kind === 'packument') return { name: r.name, version: null }
    return r.kind === 'tarball' || r.kind === 'version_doc' ? { name: r.name, version: r.version } : null
  }
  const r = classifyPypiPath(path)
  if (r.kind === 'simple_project') return { name: r.project, version: null }
  return r.kind === 'file' || r.kind === 'legacy_json' ? { name: r.project, version: r.version } : null
}

/** A refusal carried out of a nested lookup (distinct from a Map of times). */
class Refusal {
  constructor(readonly outcome: PackageGateOutcome) {}
}

/**
 * Where a PyPI file's upload time is read: the rule's index (`pypi.org` for files.pythonhosted.org; its
 * port, when it names none, is the request's), resolved and checked like any upstream; this request's
 * own origin when it is the index.
 */
async function indexTarget(ctx: GateContext): Promise<{ target: ForwardTarget; sameOrigin: boolean } | Refusal> {
  const named = ctx.control.indexHost
  const authority = named === null ? null : parseAuthority(named, ctx.target.port)
  if (authority === null || (authority.host === ctx.target.host && authority.port === ctx.target.port))
    return { target: ctx.target, sameOrigin: true }
  const resolved = await resolveChecked(authority.host, ctx.upstream)
  if (resolved.kind === 'unresolved') return new Refusal({ kind: 'deny', decision: resolved.decision })
  return {
    target: {
      address: resolved.address,
      port: authority.port,
      host: authority.host,
      tls: ctx.target.tls,
      requestTarget: '/',
    },
    sameOrigin: false,
  }
}

type GateDetail = PackageDenyDetail | 'unparseable_path' | 'unreadable_metadata' | 'metadata_too_large'

const SENTENCES: Record<GateDetail, (pkg: PackageFacts | undefined) => string> = {
  denied: (p) => `${describe(p)} is on the registry rules' deny list`,
  not_allowed: (p) => `${describe(p)} is not on the registry rules' allow list`,
  too_new: (p) => `${describe(p)} was published too recently for the registry rules' min_age`,
  unparseable_path: () => 'the registry path cannot be read as a package request, so the package rules cannot judge it',
  unreadable_metadata: (p) =>
    `the registry's metadata for ${describe(p)} could not be read and filtered by the package rules, so it is refused rather than passed unfiltered`,
  metadata_too_large: (p) =>
    `the registry's metadata for ${describe(p)} is larger than the ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB the package rules filter`,
}

function describe(p: PackageFacts | undefined): string {
  if (p === undefined) return 'this package'
  return p.version === null ? `package ${p.name}` : `${p.name}@${p.version}`
}

function refuse(ctx: GateContext, detail: GateDetail, pkg?: PackageFacts, explanation?: string): PackageGateOutcome {
  const decision: DenyDecision = {
    verdict: 'deny',
    reason: 'denied_package',
    ruleId: ctx.ruleId,
    detail,
    explanation: explanation ?? SENTENCES[detail](pkg),
  }
  return pkg === undefined ? { kind: 'deny', decision } : { kind: 'deny', decision, pkg }
}

function upstreamFailed(failure: UpstreamFailureKind, pkg: PackageFacts): PackageGateOutcome {
  return { kind: 'deny', decision: { verdict: 'deny', reason: 'upstream_error', ruleId: null, detail: failure }, pkg }
}

/**
 * Why nothing of a package is offered: every version withheld, or every stable one; or, for one
 * version's document (PyPI's /pypi/<name>/<version>/json), that version.
 */
function withheldAllSentence(
  outcome: Extract<RewriteOutcome, { kind: 'withheld_all' }>,
  version: string | null = null,
): string {
  const by: Record<PackageDenyDetail, string> = {
    denied: "the registry rules' deny list",
    not_allowed: "the registry rules' allow list",
    too_new: "the registry rules' min_age",
  }
  const n = outcome.withheld.length
  if (version !== null) return `version ${version} of this package is withheld by ${by[outcome.detail]} (${n} withheld)`
  return outcome.why === 'no_stable_left'
    ? `every stable version of this package is withheld by ${by[outcome.detail]} (${n} withheld), and a prerelease is not offered as latest`
    : `every version of this package is withheld by ${by[outcome.detail]} (${n} withheld)`
}

function tooNewSentence(
  rules: PackageRules,
  name: string,
  version: string | null,
  publishedAt: number | null,
): string | undefined {
  const minAge = rules.minAgeMsOf(name, version)
  if (minAge === null || publishedAt === null) return undefined
  const hours = Math.max(0, Math.floor((Date.now() - publishedAt) / 3600_000))
  return `this version was published ${hours} h ago, and the registry rules install nothing younger than ${Math.round(minAge / 3600_000)} h (min_age); an admin can exempt it with min_age_exempt`
}

function unparseableSentence(problem: string): string {
  return `the registry path cannot be read as a package request (${problem.replaceAll('_', ' ')}), so the package rules cannot judge it`
}

function acceptsAbbreviated(accept: string | undefined): boolean {
  return accept !== undefined && accept.toLowerCase().includes(NPM_ABBREVIATED)
}

/** pip and uv ask for the JSON form first; a client that names only HTML gets HTML rendered from it. */
function acceptsPypiJson(accept: string | undefined): boolean {
  return accept !== undefined && /application\/vnd\.pypi\.simple\.(v1|latest)\+json/i.test(accept)
}

const inflateAny = async (body: Buffer, opts: ZlibOptions): Promise<Buffer> => {
  // HTTP's deflate is zlib-wrapped; some servers send it raw.
  try {
    return await inflateAsync(body, opts)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw err
    return inflateRawAsync(body, opts)
  }
}
const DECODERS: Readonly<Record<string, (body: Buffer, opts: ZlibOptions) => Promise<Buffer>>> = {
  gzip: gunzipAsync,
  'x-gzip': gunzipAsync,
  deflate: inflateAny,
  br: brotliDecompressAsync,
}

/**
 * A document as its bytes mean it: a registry that compresses though asked for `identity` is decoded
 * (one coding of gzip, deflate or br, to at most MAX_DOCUMENT_BYTES) rather than refused. What cannot
 * be decoded is returned as it came, and fails closed where it is read.
 */
export async function decodeDocument(doc: WholeAnswer): Promise<WholeAnswer> {
  if (doc.kind !== 'answer') return doc
  const at = doc.headers.findIndex((h, i) => i % 2 === 0 && h === 'content-encoding')
  if (at < 0) return doc
  const coding = (doc.headers[at + 1] as string).trim().toLowerCase()
  const decode = Object.hasOwn(DECODERS, coding) ? DECODERS[coding] : undefined
  if (coding !== 'identity' && coding !== '' && decode === undefined) return doc
  const headers = [...doc.headers.slice(0, at), ...doc.headers.slice(at + 2)]
  if (decode === undefined) return { ...doc, headers }
  try {
    return { ...doc, headers, body: await decode(doc.body, { maxOutputLength: MAX_DOCUMENT_BYTES }) }
  } catch (err) {
    return (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? { kind: 'too_large' } : doc
  }
}

/** `answer` with every injected secret masked in its fields and body (same lengths: `*` for each byte). */
function maskAnswer(answer: GateAnswer, injected: readonly InjectedHeader[]): GateAnswer {
  const secrets = injected.flatMap((h) => h.secrets)
  const headers = [...answer.headers]
  maskFields(headers, secrets)
  const body = maskSecrets(
    answer.body,
    secrets.map((x) => Buffer.from(x)),
  )
  return { status: answer.status, headers, body }
}

/** The registry's own answer for a dist-tag it does not have. */
function tagNotFound(spec: string): GateAnswer {
  const body = Buffer.from(JSON.stringify({ error: `version not found: ${spec}` }))
  return { status: 404, headers: withLength(['content-type', 'application/json'], body), body }
}

/** The version a dist-tag names in the upstream packument, read again only on this rare path. */
function taggedVersion(upstream: Uint8Array, tag: string): string | null {
  try {
    const doc: unknown = JSON.parse(Buffer.from(upstream).toString('utf8'))
    const tags = isJsonObject(doc) && isJsonObject(doc['dist-tags']) ? doc['dist-tags'] : {}
    const version = Object.hasOwn(tags, tag) ? tags[tag] : undefined
    return typeof version === 'string' ? version : null
  } catch {
    return null
  }
}

/** An upstream answer as it came (a 404, a 401, or a document nothing was withheld from), with its length. */
function relay(doc: Extract<WholeAnswer, { kind: 'answer' }>): GateAnswer {
  return { status: doc.status, headers: withLength(dropPairs(doc.headers, RELAY_DROPS), doc.body), body: doc.body }
}

const RELAY_DROPS = new Set(['content-length'])

/** The rewritten document, in the form (and type) the client asked for. */
function rewritten(
  doc: Extract<WholeAnswer, { kind: 'answer' }>,
  outcome: Extract<RewriteOutcome, { kind: 'rewritten' }>,
  contentType: string,
): GateAnswer {
  if (outcome.unchanged) return relay(doc)
  return json(doc, Buffer.from(outcome.body.buffer, outcome.body.byteOffset, outcome.body.byteLength), contentType)
}

function json(
  doc: Extract<WholeAnswer, { kind: 'answer' }>,
  body: Buffer,
  contentType = 'application/json',
): GateAnswer {
  const headers = dropPairs(doc.headers, NOT_RELAYED)
  headers.push('content-type', contentType)
  return { status: 200, headers: withLength(headers, body), body }
}

function dropPairs(flat: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2)
    if (!names.has((flat[i] as string).toLowerCase())) out.push(flat[i] as string, flat[i + 1] as string)
  return out
}

function withLength(headers: string[], body: Buffer): string[] {
  headers.push('content-length', String(body.length))
  return headers
}
