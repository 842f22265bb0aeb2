/**
 * `portcullis replay`: recorded requests decided again under a new policy, and what flips. PURE.
 *
 * The baseline is the verdict each record shows (recordedVerdict), or, given the policy in force
 * (`against`), that policy's verdict for the same facts: then a change between the two policies is
 * all that is reported, even for records made under an older one. A record lacks facts the proxy
 * had: the query string (never recorded), the requests inside a spliced tunnel, the end of a path cut
 * at 1,024 characters. Where the answer depends on one, the record is `undetermined` and says which;
 * nothing is guessed.
 */
import type { RuntimeConfig } from '../config/types.js'
import type { DecisionRecord } from '../telemetry/events.js'
import {
  queryCandidates,
  recordedVerdict,
  redecideRecord,
  type MissingFact,
  type OfflineDecision,
} from './decide-offline.js'
import { requestsOf } from './records.js'

export type Direction = 'allow_to_deny' | 'deny_to_allow'

export interface Verdict {
  readonly verdict: 'allow' | 'deny'
  readonly reason: string
  readonly rule: string | null
}

interface Span {
  requests: number
  records: number
  firstSeen: string
  lastSeen: string
  methods: Set<string>
  paths: Set<string>
}

/** What the records of a group add up to. */
export interface Coverage {
  readonly requests: number
  readonly records: number
  readonly firstSeen: string
  readonly lastSeen: string
  readonly methods: readonly string[]
  /** Up to five of the paths (none for a CONNECT). */
  readonly paths: readonly string[]
}

export interface FlipGroup extends Coverage {
  readonly direction: Direction
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly from: Verdict
  readonly to: Verdict
}

export interface UndeterminedGroup extends Coverage {
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly missing: MissingFact
}

export interface ReplayReport {
  /** Decision records read. */
  readonly records: number
  readonly requests: number
  readonly totals: {
    readonly allowToDeny: number
    readonly denyToAllow: number
    readonly undetermined: number
    readonly unchanged: number
    readonly skipped: number
    /**
     * Allowed by an approval (rule `approval:<id>`), with no baseline policy: approvals are not in
     * the config, so NEW alone would deny them all; they are kept out of the flips. With `--against`
     * both policies decide them without the approval, and only a change between the two counts.
     */
    readonly approved: number
  }
  readonly flips: readonly FlipGroup[]
  readonly undetermined: readonly UndeterminedGroup[]
  /** Records that are not policy decisions (failed logins, SNI/Host mismatches, faults), by reason. */
  readonly skipped: ReadonlyArray<{ readonly reason: string; readonly requests: number }>
}

/** What each missing fact means, for people. */
export const MISSING_FACTS: Readonly<Record<MissingFact, string>> = {
  query:
    'the decision depends on the query string (a rule path such as ?service=git-upload-pack), which records do not keep',
  tunnel_contents:
    'the new policy intercepts this host and decides each request inside; the old tunnel was spliced, so its requests were never seen',
  full_path: 'the recorded path was cut at 1,024 characters; the decision depends on the rest',
}

const MAX_PATHS = 5

function verdictOf(d: OfflineDecision): Verdict {
  return { verdict: d.verdict, reason: d.reason, rule: d.rule }
}

export function replayRecords(
  records: readonly DecisionRecord[],
  next: RuntimeConfig,
  against: RuntimeConfig | null = null,
): ReplayReport {
  const flips = new Map<string, Tally<Omit<FlipGroup, keyof Coverage>>>()
  const unknown = new Map<string, Tally<Omit<UndeterminedGroup, keyof Coverage>>>()
  const skipped = new Map<string, number>()
  const totals = { allowToDeny: 0, denyToAllow: 0, undetermined: 0, unchanged: 0, skipped: 0, approved: 0 }
  let requests = 0
  // One request, one verdict: a request can have a second record with its id (its upstream failed after
  // the decision; in audit mode, the failure or private address that stopped a would-be denial). The
  // first is its policy verdict; the later ones are not counted again. (A record alone, such as an
  // `upstream_error` whose dial failed, stands for its request.)
  const chosen = new Map<string, DecisionRecord>()
  for (const r of records) {
    const other = chosen.get(r.id)
    if (other === undefined || isEarlier(r, other)) chosen.set(r.id, r)
  }
  for (const r of records) {
    if (chosen.get(r.id) !== r) continue
    const n = requestsOf(r)
    requests += n
    const recorded = recordedVerdict(r)
    if (recorded === null || r.agent === null) {
      skipped.set(r.reason, (skipped.get(r.reason) ?? 0) + n)
      totals.skipped += n
      continue
    }
    if (against === null && recorded === 'allow' && r.rule?.startsWith('approval:') === true) {
      totals.approved += n
      continue
    }
    const queries = [
      ...new Set([
        ...queryCandidates(next, r.agent, r.host),
        ...(against ? queryCandidates(against, r.agent, r.host) : []),
      ]),
    ]
    const now = redecideRecord(next, r, queries)
    const before = against ? redecideRecord(against, r, queries) : null
    if (now === null) continue
    const base: Verdict[] = before
      ? before.readings.map((x) => verdictOf(x.decision))
      : now.readings.map(() => ({ verdict: recorded, reason: r.reason, rule: r.rule }))
    const all = now.readings.map((x, i) => [base[i] as Verdict, verdictOf(x.decision)] as const)
    // With the old policy known, the record itself narrows the unrecorded query: only readings under
    // which OLD gives what was recorded (verdict, reason, rule) can be what happened. (A record made
    // under an even older policy matches none; then every reading stays.)
    const consistent = before ? all.filter(([old]) => sameAsRecord(old, r, recorded)) : all
    const pairs = consistent.length > 0 ? consistent : all
    const missing = [...now.missing, ...(before?.missing ?? [])]
    const same = pairs.every(([a, b]) => a.verdict === b.verdict)
    const flipped = pairs.every(([a, b]) => a.verdict !== b.verdict)
    const directions = new Set(pairs.map(([a]) => a.verdict))
    let fact: MissingFact | null = null
    if (missing.includes('tunnel_contents')) fact = 'tunnel_contents'
    else if (!same && missing.includes('full_path')) fact = 'full_path'
    else if (!same && !(flipped && directions.size === 1)) fact = 'query'
    if (fact !== null) {
      totals.undetermined += n
      const key = `${r.agent}|${r.host}|${r.port}|${fact}`
      count(unknown, key, { agent: r.agent, host: r.host, port: r.port, missing: fact }, r, n)
      continue
    }
    if (same) {
      totals.unchanged += n
      continue
    }
    const [from, to] = pairs[0] as readonly [Verdict, Verdict]
    const direction: Direction = from.verdict === 'allow' ? 'allow_to_deny' : 'deny_to_allow'
    if (direction === 'allow_to_deny') totals.allowToDeny += n
    else totals.denyToAllow += n
    const key = [direction, r.agent, r.host, r.port, from.reason, from.rule, to.reason, to.rule].join('|')
    count(flips, key, { direction, agent: r.agent, host: r.host, port: r.port, from, to }, r, n)
  }
  return {
    records: records.length,
    requests,
    totals,
    flips: summarize(flips),
    undetermined: summarize(unknown),
    skipped: [...skipped].map(([reason, n]) => ({ reason, requests: n })).sort(byRequests),
  }
}

/** Made before `b` (records of one request can share a millisecond: then the one that is not an upstream failure). */
function isEarlier(a: DecisionRecord, b: DecisionRecord): boolean {
  if (a.time !== b.time) return a.time < b.time
  return a.reason !== 'upstream_error' && b.reason === 'upstream_error'
}

/** A group being counted: what identifies it, and its records so far. */
interface Tally<G> {
  readonly group: G
  readonly span: Span
}

/** Count record `r` (n requests) in the group under `key`, opening it with `group` if it is new. */
function count<G>(groups: Map<string, Tally<G>>, key: string, group: G, r: DecisionRecord, n: number): void {
  let g = groups.get(key)
  if (g === undefined) {
    g = { group, span: span(r) }
    groups.set(key, g)
  }
  extend(g.span, r, n)
}

/** The groups with what their records add up to, most requests first. */
function summarize<G>(groups: Map<string, Tally<G>>): Array<G & Coverage> {
  return [...groups.values()].map(({ group, span }) => ({ ...group, ...close(span) })).sort(byRequests)
}

function byRequests(a: { requests: number }, b: { requests: number }): number {
  return b.requests - a.requests
}

function span(r: DecisionRecord): Span {
  return { requests: 0, records: 0, firstSeen: r.time, lastSeen: r.time, methods: new Set(), paths: new Set() }
}

function extend(s: Span, r: DecisionRecord, n: number): void {
  s.requests += n
  s.records += 1
  if (r.time < s.firstSeen) s.firstSeen = r.time
  if (r.time > s.lastSeen) s.lastSeen = r.time
  s.methods.add(r.method)
  if (r.path !== null && r.method !== 'CONNECT' && s.paths.size < MAX_PATHS) s.paths.add(r.path)
}

function close(s: Span): Coverage {
  return {
    requests: s.requests,
    records: s.records,
    firstSeen: s.firstSeen,
    lastSeen: s.lastSeen,
    methods: [...s.methods].sort(),
    paths: [...s.paths],
  }
}

/** Does a decision reproduce the record (for a later-stage denial, the policy's allow by the same rule)? */
function sameAsRecord(v: Verdict, r: DecisionRecord, recorded: 'allow' | 'deny'): boolean {
  if (v.verdict !== recorded) return false
  return recorded === 'allow' ? r.rule === null || v.rule === r.rule : v.reason === r.reason && v.rule === r.rule
}
