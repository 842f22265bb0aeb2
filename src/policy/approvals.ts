import type { Reason } from './reasons.js'
import type { CompiledPolicy } from './compiled.js'
import { decodedReading } from '../net/url-path.js'
import { approvedHandling, decideConnect, denyByAddress, matchRequest, type RequestMatch } from './decide.js'
import { isPushPath } from './git-rules.js'
import type { ConnectDecision, ConnectFacts, Decision, RequestFacts } from './types.js'
import { formatAuthority } from '../net/host.js'

/**
 * An admin's scoped, expiring exception to policy. Created from a blocked
 * request's record; never wider than its scope:
 * - exact:       this agent, method, host, port and path (any query: records
 *                keep no query, since queries can carry credentials)
 * - path-prefix: this agent, method, host and port, paths under the blocked
 *                path's directory (`/a/b/c` → `/a/b/…`); for a top-level path,
 *                that path and below (`/left-pad` → `/left-pad/…`), never the
 *                whole host
 * - host:        this agent, host and port, any method and path
 * A CONNECT (no path) approved as exact opens that CONNECT; path-prefix, which
 * could not narrow it, is refused for a CONNECT (admin route, scope_needs_path).
 */
export type ApprovalScope = 'exact' | 'host' | 'path-prefix'

/** The longest an approval may last (the admin API and the CLI both hold to it). */
export const MAX_APPROVAL_TTL_MS = 90 * 24 * 3600_000
/** The shortest: under a second an approval would be answered already expired. */
export const MIN_APPROVAL_TTL_MS = 1000

/** Is `ttlMs` an approval's life the admin API, the CLI and approvals.default_ttl all accept? */
export function isApprovalTtl(ttlMs: number | null): ttlMs is number {
  return ttlMs !== null && ttlMs >= MIN_APPROVAL_TTL_MS && ttlMs <= MAX_APPROVAL_TTL_MS
}

export interface Approval {
  readonly id: string
  readonly request_id: string
  readonly agent: string
  readonly scope: ApprovalScope
  readonly method: string
  readonly host: string
  readonly port: number
  /** The blocked request's path (null for a CONNECT, which has none). */
  readonly path: string | null
  readonly created_at: string
  readonly expires_at: string
  readonly approved_by: string
  readonly reason: string
  /**
   * Made from a sandbox's request with sandbox_only (SPEC §9): applies to that sandbox alone. Without
   * it, an approval made from a sandbox's request applies to its agent (every sandbox of the template).
   */
  readonly sandbox?: string
}

export interface ApprovalFacts {
  readonly agent: string
  readonly method: string
  readonly host: string
  readonly port: number
  /** null for a CONNECT. */
  readonly path: string | null
  /** The sandbox asking, if any (a sandbox-only approval covers only its own). */
  readonly sandbox?: string | null
}

/** Approvals by agent, built once per change; looked up per decision. */
export type ApprovalIndex = ReadonlyMap<string, readonly Approval[]>

export function indexApprovals(list: readonly Approval[]): ApprovalIndex {
  const m = new Map<string, Approval[]>()
  for (const a of list) {
    const l = m.get(a.agent)
    if (l) l.push(a)
    else m.set(a.agent, [a])
  }
  return m
}

/** The directory a path-prefix approval of `blocked` opens, or null for a top-level path (which opens itself and below). */
function approvedDirectory(blocked: string): string | null {
  const dir = blocked.slice(0, blocked.lastIndexOf('/') + 1)
  return dir === '/' ? null : dir
}

function underPrefix(blocked: string, path: string): boolean {
  const dir = approvedDirectory(blocked)
  if (dir !== null) return path.startsWith(dir)
  return path === blocked || (blocked !== '/' && path.startsWith(`${blocked}/`))
}

export function approvalCovers(a: Approval, f: ApprovalFacts, nowMs: number): boolean {
  if (Date.parse(a.expires_at) <= nowMs) return false
  if (a.agent !== f.agent || a.host !== f.host || a.port !== f.port) return false
  if (a.sandbox !== undefined && a.sandbox !== f.sandbox) return false
  if (a.scope === 'host') return true
  // A CONNECT approval opens the CONNECT itself (a tunnel), not any inner request.
  if (a.method !== f.method || (a.path === null) !== (f.path === null)) return false
  if (a.path === null || f.path === null) return true
  return a.scope === 'exact' ? a.path === f.path : underPrefix(a.path, f.path)
}

/** What an approval opens, in words (the CLI and the page show this; approvalCovers is what applies). */
export function describeApproval(a: Pick<Approval, 'scope' | 'method' | 'host' | 'port' | 'path'>): string {
  const target = formatAuthority(a.host, a.port)
  if (a.scope === 'host') return `any request to ${target}`
  if (a.path === null) return `${a.method} ${target}`
  if (a.scope === 'exact') return `${a.method} ${target}${a.path}`
  const dir = approvedDirectory(a.path)
  if (dir !== null) return `${a.method} ${target}${dir}…`
  return a.path === '/' ? `${a.method} ${target}/` : `${a.method} ${target}${a.path} and below`
}

/** The policy reasons an approval can override (the denial body offers `portcullis approve` only for these). */
export function isApprovable(reason: Reason): boolean {
  switch (reason) {
    case 'denied_no_rule':
    case 'denied_by_rule':
    case 'denied_port':
    case 'denied_method':
    case 'denied_path':
    case 'denied_package':
      return true
    default:
      return false
  }
}

/**
 * Overlay: a policy denial covered by an active approval becomes an allow with
 * rule id `approval:<id>`. Only policy reasons are overridable: identity,
 * private-address, SNI/Host mismatch, secrets and limits stay as they are.
 */
export function applyApprovals(d: Decision, f: ApprovalFacts, index: ApprovalIndex, nowMs: number): Decision {
  if (d.verdict === 'allow' || !isApprovable(d.reason)) return d
  const a = coveringApproval(index, f, nowMs)
  return a === undefined ? d : approvedBy(a)
}

/** The first active approval that covers this request, if any. */
export function coveringApproval(index: ApprovalIndex, f: ApprovalFacts, nowMs: number): Approval | undefined {
  const list = index.get(f.agent)
  if (list !== undefined) for (const a of list) if (approvalCovers(a, f, nowMs)) return a
  return undefined
}

/**
 * The first active approval that covers this request as written and as a decoding server reads it
 * (decodedReading), as the policy reads both (decide.ts step 7): a path-prefix approval of /a/ must
 * not open /a/..%2F..%2Fadmin, nor lift the package guard (SPEC §11) for a path that names another
 * package. None for a path with no single reading.
 */
export function approvalOfRequest(index: ApprovalIndex, f: ApprovalFacts, nowMs: number): Approval | undefined {
  const list = index.get(f.agent)
  if (list === undefined) return undefined
  const decoded = f.path === null ? null : decodedReading(f.path)
  if (f.path !== null && decoded === null) return undefined
  const read = { ...f, path: decoded }
  for (const a of list)
    if (approvalCovers(a, f, nowMs) && (decoded === f.path || approvalCovers(a, read, nowMs))) return a
  return undefined
}

/**
 * matchRequest with the approval overlay: the one entry point the proxy edges use. The rule is the
 * policy rule that allowed (its inject_headers and inspect_body apply), null when an approval did.
 */
export function matchRequestApproved(
  policy: CompiledPolicy,
  facts: RequestFacts,
  index: ApprovalIndex,
  nowMs: number,
  sandbox: string | null = null,
): RequestMatch {
  const m = matchRequest(policy, facts)
  if (m.decision.verdict === 'allow' || index.size === 0 || !isApprovable(m.decision.reason)) return m
  const f: ApprovalFacts = {
    agent: facts.agent,
    method: facts.method,
    host: facts.host,
    port: facts.port,
    path: facts.path,
    sandbox,
  }
  const a = approvalOfRequest(index, f, nowMs)
  if (a === undefined) return m
  const decoded = decodedReading(facts.path)
  const readings = decoded === null || decoded === facts.path ? [facts.path] : [facts.path, decoded]
  const handling = approvedHandling(policy, facts, readings, m.handling)
  // Pushes are governed by repo rules (SPEC §8): an approval lets one through only to be checked against
  // the write rule that names its repository, never past them (a host approval is not a merge button).
  if (readings.some((path) => isPushPath(path, facts.query)) && handling.repo?.access !== 'write') return m
  return { decision: approvedBy(a), rule: null, handling }
}

/** The decision of a request an approval lets through: the approval is its rule. */
export function approvedBy(a: Approval): Decision {
  return { verdict: 'allow', reason: 'allowed', ruleId: `approval:${a.id}` }
}

/** decideConnect with the approval overlay; an approved CONNECT is tunnelled (the approval covers the host, not paths). */
export function decideConnectApproved(
  policy: CompiledPolicy,
  facts: ConnectFacts,
  index: ApprovalIndex,
  nowMs: number,
  sandbox: string | null = null,
): ConnectDecision {
  const d = decideConnect(policy, facts)
  if (d.verdict === 'allow' || index.size === 0) return d
  const overlaid = applyApprovals(
    d,
    { agent: facts.agent, method: 'CONNECT', host: facts.host, port: facts.port, path: null, sandbox },
    index,
    nowMs,
  )
  return overlaid.verdict === 'allow' ? { ...overlaid, via: 'tunnel' } : d
}

/**
 * denyByAddress with approvals overlaid: an approval of the request (named by its host, as the denial
 * body offers it) lifts an IP or CIDR rule's denial as it lifts any other `denied_by_rule`, and for a
 * request it must open the path as a decoding server reads it too (as in matchRequestApproved). Null
 * when no such rule refuses; else the denial, or the approval's allow (its id is then the rule).
 */
export function denyByAddressApproved(
  policy: CompiledPolicy,
  facts: ConnectFacts,
  address: string,
  request: Pick<RequestFacts, 'method' | 'scheme' | 'path' | 'query'> | null,
  index: ApprovalIndex,
  nowMs: number,
  sandbox: string | null = null,
): Decision | null {
  const d = denyByAddress(policy, facts, address, request)
  if (d === null || index.size === 0 || !isApprovable(d.reason)) return d
  const f: ApprovalFacts = {
    agent: facts.agent,
    method: request?.method ?? 'CONNECT',
    host: facts.host,
    port: facts.port,
    path: request?.path ?? null,
    sandbox,
  }
  const a = approvalOfRequest(index, f, nowMs)
  return a === undefined ? d : approvedBy(a)
}
