import { hash, randomFillSync } from 'node:crypto'
import type { Decision, Mode } from '../policy/types.js'
import type { Reason } from '../policy/reasons.js'

/**
 * The two record shapes of SPEC §4. Every record is built here and nowhere
 * else, so sinks (log, ring, Redis, metrics) see exactly one shape.
 */
export type TlsHandling = 'tunnel' | 'intercept'

/** What is known about a request when it is decided. */
export interface DecisionFacts {
  readonly id: string
  readonly agent: string | null
  readonly src: string
  readonly method: string
  readonly scheme: 'http' | 'https'
  readonly host: string
  readonly port: number
  readonly path: string | null
  readonly tls: TlsHandling | null
  readonly mode: Mode
  readonly address: string | null
  /**
   * The server name a ClientHello sent that differs from the CONNECT host (denied_sni_mismatch,
   * detail sni_differs): the name an agent tried to front. Normalised when it is a host name, else
   * its printable characters; cut at 255.
   */
  readonly sni?: string
  /** A sandbox credential's id and labels (SPEC §9); `agent` is then its template. */
  readonly sandbox?: string | undefined
  readonly labels?: SandboxLabels | undefined
  readonly sandbox_expires_at?: string | undefined
  /** A git push (SPEC §8): the refs it updates; on a refused push, each ref's reason. */
  readonly git?: GitPushFacts
  /** A registry request under package rules (SPEC §11): the package, and what the answer withheld. */
  readonly package?: PackageFacts
}

export interface PackageFacts {
  readonly registry: 'npm' | 'pypi'
  readonly name: string
  /** The version asked for (a tarball, a file, a version document); null for a package's metadata. */
  readonly version: string | null
  /** Metadata answers: how many versions (npm) or files (PyPI) were withheld from it. */
  readonly withheld?: number
  /** Audit mode: how many enforce would have withheld from the answer (passed unmodified). */
  readonly would_withhold?: number
}

/** A sandbox's labels as issued (`task: T-123`). */
export type SandboxLabels = Readonly<Record<string, string>>

export interface GitPushFacts {
  readonly refs: ReadonlyArray<{
    readonly ref: string
    /** A ref name longer than the record keeps is cut (ending in `…`); this is the sha256 of the whole. */
    readonly ref_sha256?: string
    readonly old: string
    readonly new: string
    readonly refused?: string
  }>
  /** Set when the push named more refs than the record keeps (RECORDED_REFS): how many it named. */
  readonly refs_total?: number
}

/** A decision record: the facts of the request plus the verdict (field order on the wire is buildDecisionRecord's). */
export interface DecisionRecord extends DecisionFacts {
  readonly time: string
  readonly event: 'decision'
  readonly decision: 'allow' | 'deny'
  readonly reason: Reason
  readonly rule: string | null
  readonly would_deny: boolean
  /** Machine-safe detail (e.g. `timeout`, `not_tls`); never user-controlled text. */
  readonly detail?: string
  /** A path or host longer than the record keeps is cut (ending in `…`); this is the sha256 of the whole. */
  readonly path_sha256?: string
  readonly host_sha256?: string
  /** This record stands for itself and this many more of the same denial from the same source in its second (denial-fold.ts). */
  readonly repeats?: number
}

export interface CloseRecord {
  readonly time: string
  readonly id: string
  readonly event: 'close'
  readonly agent: string | null
  readonly sandbox?: string
  readonly labels?: SandboxLabels
  readonly host: string
  readonly bytes_up: number
  readonly bytes_down: number
  readonly duration_ms: number
  /**
   * A plain-HTTP answer the upstream cut short after its head was passed on (the client got a
   * truncated body): how it failed, an `upstream_error` detail (`reset`, `bad_answer`, …).
   */
  readonly upstream_error?: string
  /**
   * An intercepted client connection whose TLS handshake the proxy refused: why
   * (`no_application_protocol`: it offered no HTTP/1.1 in ALPN, an h2-only client such as gRPC).
   */
  readonly client_error?: string
}

/** The audit trail of the human-approval loop: who opened or closed what, when and why. */
export interface ApprovalRecord {
  readonly time: string
  readonly id: string
  readonly event: 'approval'
  readonly action: 'create' | 'extend' | 'revoke'
  readonly approval_id: string
  readonly request_id: string | null
  readonly agent: string | null
  readonly scope: string | null
  readonly method: string | null
  readonly host: string | null
  readonly port: number | null
  readonly path: string | null
  readonly expires_at: string | null
  readonly actor: string
  readonly reason: string
  /** Set for an approval made for one sandbox alone (sandbox_only). */
  readonly sandbox?: string
}

export type TelemetryRecord = DecisionRecord | CloseRecord | ApprovalRecord

/** Crypto-strong bytes from a pool refilled 4 KiB at a time (one kernel call per 4,096 bytes, not per byte). */
const randomPool = Buffer.alloc(4096)
let randomPos = randomPool.length
function pooledRandomByte(): number {
  if (randomPos >= randomPool.length) {
    randomFillSync(randomPool)
    randomPos = 0
  }
  return randomPool[randomPos++] as number
}

/** Crockford's base32, as ULIDs spell them, as character codes. */
const ULID_DIGITS = Buffer.from('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 'latin1')
const ulidText = Buffer.alloc(26)
/** The 80-bit random part as 16 base-32 digits, kept to count up within a millisecond. */
const ulidRandom = new Uint8Array(16)
let ulidLastMs = -1

/**
 * ULIDs: sortable by time, so `since`/cursor queries can compare ids; monotonic within a millisecond
 * (the random part counts up, as ulid's monotonicFactory does) and when the clock steps back. Built in
 * one 26-byte buffer and read out as one flat string: ulid's own builds each id as a chain of 26
 * one-character strings, which every record's JSON.stringify then had to flatten.
 */
export function newRequestId(): string {
  const now = Date.now()
  // 2^80 ids in one millisecond cannot happen; were the count to wrap, the id moves on a millisecond.
  if (now > ulidLastMs) startMillisecond(now)
  else if (!countUp()) startMillisecond(ulidLastMs + 1)
  for (let i = 0; i < 16; i++) ulidText[10 + i] = ULID_DIGITS[ulidRandom[i] as number] as number
  return ulidText.toString('latin1', 0, 26)
}

function startMillisecond(ms: number): void {
  ulidLastMs = ms
  let t = ms
  for (let i = 9; i >= 0; i--) {
    ulidText[i] = ULID_DIGITS[t % 32] as number
    t = Math.floor(t / 32)
  }
  // 256 is a multiple of 32: the low five bits of a uniform byte are a uniform digit.
  for (let i = 0; i < 16; i++) ulidRandom[i] = pooledRandomByte() & 31
}

/** The random part plus one; false when it wrapped. */
function countUp(): boolean {
  let i = 15
  while (i >= 0 && ulidRandom[i] === 31) ulidRandom[i--] = 0
  if (i < 0) return false
  ulidRandom[i] = (ulidRandom[i] as number) + 1
  return true
}

let isoMs = Number.NaN
let isoText = ''

/** `ms` as an ISO 8601 time, made once per millisecond: a busy proxy writes several records in each. */
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString()
    isoMs = ms
  }
  return isoText
}

/** The longest path and host a record keeps (a 15 KB path per denial grew the log by 18 MiB/s). */
export const RECORDED_PATH_CHARS = 1024
/**
 * A push's refs in a record: at most this many, each name at most RECORDED_REF_CHARS. A push may name
 * thousands of refs of 4 KiB each; recorded whole, one refused push made a 1 MB record, a few thousand
 * of them filled the heap through the in-memory ring, and lines that long cannot be written to a pipe
 * atomically (log-sink.ts). Eight refs of 200 characters keep a push's record within about 4 KiB.
 */
export const RECORDED_REFS = 8
export const RECORDED_REF_CHARS = 200
export const RECORDED_HOST_CHARS = 255

/** `text` cut to `max` characters with `…`, and the hex sha256 of the whole; null when it fits. */
function cut(text: string, max: number): { text: string; sha256: string } | null {
  if (text.length <= max) return null
  return { text: `${text.slice(0, max - 1)}…`, sha256: hash('sha256', text, 'hex') }
}

export function buildDecisionRecord(f: DecisionFacts, d: Decision, wouldDeny: boolean, now?: Date): DecisionRecord {
  const longPath = f.path === null ? null : cut(f.path, RECORDED_PATH_CHARS)
  const longHost = cut(f.host, RECORDED_HOST_CHARS)
  if (longPath !== null || longHost !== null) {
    const record = buildDecisionRecord(
      { ...f, path: longPath?.text ?? f.path, host: longHost?.text ?? f.host },
      d,
      wouldDeny,
      now,
    )
    return {
      ...record,
      ...(longPath ? { path_sha256: longPath.sha256 } : {}),
      ...(longHost ? { host_sha256: longHost.sha256 } : {}),
    }
  }
  const record: DecisionRecord = {
    time: now === undefined ? isoTime(Date.now()) : now.toISOString(),
    id: f.id,
    event: 'decision',
    agent: f.agent,
    src: f.src,
    method: f.method,
    scheme: f.scheme,
    host: f.host,
    port: f.port,
    path: f.path,
    tls: f.tls,
    decision: d.verdict,
    reason: d.reason,
    rule: d.ruleId,
    mode: f.mode,
    would_deny: wouldDeny,
    address: f.address,
  }
  const withDetail = d.verdict === 'deny' && d.detail !== undefined ? { ...record, detail: d.detail } : record
  const withSni = f.sni === undefined ? withDetail : { ...withDetail, sni: f.sni }
  const withSandbox =
    f.sandbox === undefined
      ? withSni
      : { ...withSni, sandbox: f.sandbox, labels: f.labels ?? {}, sandbox_expires_at: f.sandbox_expires_at }
  const withGit = f.git === undefined ? withSandbox : { ...withSandbox, git: recordedGit(f.git) }
  return f.package === undefined ? withGit : { ...withGit, package: f.package }
}

/** A push's facts as a record keeps them: refs and their names capped (RECORDED_REFS, RECORDED_REF_CHARS). */
function recordedGit(git: GitPushFacts): GitPushFacts {
  const fits = git.refs.length <= RECORDED_REFS && git.refs.every((r) => r.ref.length <= RECORDED_REF_CHARS)
  if (fits) return git
  const refs = git.refs.slice(0, RECORDED_REFS).map((r) => {
    const long = cut(r.ref, RECORDED_REF_CHARS)
    return long === null ? r : { ...r, ref: long.text, ref_sha256: long.sha256 }
  })
  return git.refs.length > RECORDED_REFS ? { refs, refs_total: git.refs.length } : { refs }
}

export function buildCloseRecord(
  f: {
    readonly id: string
    readonly agent: string | null
    readonly host: string
    readonly sandbox?: string | undefined
    readonly labels?: SandboxLabels | undefined
  },
  bytesUp: number,
  bytesDown: number,
  startedAtMs: number,
  nowMs: number = Date.now(),
): CloseRecord {
  const record: CloseRecord = {
    time: isoTime(nowMs),
    id: f.id,
    event: 'close',
    agent: f.agent,
    host: f.host,
    bytes_up: bytesUp,
    bytes_down: bytesDown,
    duration_ms: Math.max(0, Math.round(nowMs - startedAtMs)),
  }
  return f.sandbox === undefined ? record : { ...record, sandbox: f.sandbox, labels: f.labels ?? {} }
}

export function buildApprovalRecord(
  action: ApprovalRecord['action'],
  a: {
    readonly id: string
    readonly request_id?: string
    readonly agent?: string
    readonly scope?: string
    readonly method?: string
    readonly host?: string
    readonly port?: number
    readonly path?: string | null
    readonly expires_at?: string
    readonly sandbox?: string
  },
  actor: string,
  reason: string,
  now: Date = new Date(),
): ApprovalRecord {
  const record: ApprovalRecord = {
    time: now.toISOString(),
    id: newRequestId(),
    event: 'approval',
    action,
    approval_id: a.id,
    request_id: a.request_id ?? null,
    agent: a.agent ?? null,
    scope: a.scope ?? null,
    method: a.method ?? null,
    host: a.host ?? null,
    port: a.port ?? null,
    path: a.path ?? null,
    expires_at: a.expires_at ?? null,
    actor,
    reason,
  }
  // A sandbox-only approval says so: without it, the audit trail shows one for the whole agent.
  return a.sandbox === undefined ? record : { ...record, sandbox: a.sandbox }
}

/**
 * The optional fields of a record (sandbox identity, fold count, push and package facts, cut hashes,
 * fronted name) as `portcullis.<name>`: an ECS log holds the same records as the JSON one
 * (lifecycle/records.ts fromEcs reads them back).
 */
export const ECS_EXTRAS = [
  'sandbox',
  'labels',
  'sandbox_expires_at',
  'repeats',
  'git',
  'package',
  'path_sha256',
  'host_sha256',
  'sni',
  'upstream_error',
  'client_error',
] as const
