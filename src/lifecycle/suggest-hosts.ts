/**
 * Host rules for denials that no repo rule or preset answers (SPEC §10): one rule per host with the
 * ports and methods seen, then siblings folded into `*.domain` where that admits no host denied on
 * purpose. PURE.
 *
 * - ports: omitted when every port seen is a default port (upstream.ports), else the ports seen;
 *   ports used differently (a tunnel on one, GET on another; other methods) get a rule each, every
 *   one naming its ports, so nothing seen on one port is opened on another.
 * - methods: omitted when a CONNECT was seen (what went inside a tunnel is unknown, and naming
 *   methods would make the host intercepted); else the methods seen.
 * - paths: only where the policy already limits this host by path (a host rule without paths would
 *   open what that rule keeps closed): the paths seen, up to four, else their common directory `/**`.
 * - folding: two or more hosts with the same parent (`a.cdn.example.com`, `b.cdn.example.com`) become
 *   `*.cdn.example.com`, unless the parent is a top-level or shared-hosting domain (anyone can own a
 *   subdomain there), or a host under it was denied on purpose (a deny rule, or a `denied_by_rule`
 *   record): then the hosts stay as they are and a note says why. Hosts whose rules differ in
 *   ports or methods fold into one wildcard per shape.
 */
import { isIpLiteral } from '../net/host.js'
import { formatHostPattern, matchHostPattern, type HostPattern } from '../policy/host-pattern.js'
import type { DecisionRecord } from '../telemetry/events.js'
import type { HostRuleShape } from './rule-yaml.js'

export interface HostDraft {
  readonly rule: HostRuleShape
  readonly records: readonly DecisionRecord[]
  /** The exact hosts a wildcard stands for (empty for a rule on one host). */
  readonly folded: readonly string[]
}

/** Something denied on purpose: a deny rule's host pattern, or a host a `denied_by_rule` record names. */
export interface Protected {
  readonly pattern: HostPattern
  /** The rule that denies it. */
  readonly rule: string
}

export interface HostRuleContext {
  readonly defaultPorts: ReadonlySet<number>
  /** Does the policy already limit this host by path for the agents concerned? */
  readonly pathLimited: (host: string) => boolean
  readonly protected: readonly Protected[]
}

const MAX_LISTED_PATHS = 4

/** Parents under which anyone can own a subdomain: a wildcard there admits strangers. */
const SHARED_PARENTS = new Set([
  'github.io',
  'githubusercontent.com',
  'gitlab.io',
  'amazonaws.com',
  's3.amazonaws.com',
  'cloudfront.net',
  'herokuapp.com',
  'vercel.app',
  'netlify.app',
  'pages.dev',
  'workers.dev',
  'appspot.com',
  'web.app',
  'firebaseapp.com',
  'azurewebsites.net',
  'blob.core.windows.net',
  'ngrok.io',
  'ngrok-free.app',
  'glitch.me',
  'onrender.com',
  'fly.dev',
  'repl.co',
  'trycloudflare.com',
])

export function hostDrafts(records: readonly DecisionRecord[], ctx: HostRuleContext): HostDraft[] {
  const byHost = new Map<string, DecisionRecord[]>()
  for (const r of records) {
    const list = byHost.get(r.host)
    if (list) list.push(r)
    else byHost.set(r.host, [r])
  }
  return [...byHost].flatMap(([host, rs]) => {
    const ports = byPortUse(rs)
    // Ports used alike share a rule; ports used differently each name theirs (even a default one),
    // so that no method (or tunnel) seen on one port is opened on another.
    const named = ports.length > 1
    return ports.flatMap((onPorts) =>
      byMethods(host, onPorts, ctx).map((group) => ({
        rule: hostRule(host, group, ctx, named),
        records: group,
        folded: [],
      })),
    )
  })
}

/** How a port was used: tunnelled (a CONNECT, or no path recorded), or the methods seen on it. */
function portUse(rs: readonly DecisionRecord[]): string {
  if (rs.some((r) => r.method === 'CONNECT' || r.path === null)) return 'tunnel'
  return [...new Set(rs.map((r) => r.method))].sort().join(' ')
}

/** A host's records grouped by port, ports used alike (portUse) in one group. */
function byPortUse(rs: readonly DecisionRecord[]): DecisionRecord[][] {
  const byPort = new Map<number, DecisionRecord[]>()
  for (const r of rs) {
    const list = byPort.get(r.port)
    if (list) list.push(r)
    else byPort.set(r.port, [r])
  }
  const byUse = new Map<string, DecisionRecord[]>()
  for (const list of byPort.values()) {
    const use = portUse(list)
    const g = byUse.get(use)
    if (g) g.push(...list)
    else byUse.set(use, [...list])
  }
  return [...byUse.values()]
}

/**
 * A host whose rules limit paths gets one rule per set of methods seen together on a path: GET and
 * POST on /api/items and GET on /blog/post make two rules, not GET and POST on both (which would
 * open POST /blog/post, never seen). Tunnelled hosts and hosts without paths stay one rule.
 */
function byMethods(host: string, rs: readonly DecisionRecord[], ctx: HostRuleContext): DecisionRecord[][] {
  if (rs.some((r) => r.method === 'CONNECT' || r.path === null) || !ctx.pathLimited(host)) return [[...rs]]
  const methodsOf = new Map<string, Set<string>>()
  for (const r of rs) {
    const m = methodsOf.get(r.path as string)
    if (m) m.add(r.method)
    else methodsOf.set(r.path as string, new Set([r.method]))
  }
  const groups = new Map<string, DecisionRecord[]>()
  for (const r of rs) {
    const key = [...(methodsOf.get(r.path as string) as Set<string>)].sort().join(' ')
    const g = groups.get(key)
    if (g) g.push(r)
    else groups.set(key, [r])
  }
  return [...groups.values()]
}

function hostRule(
  host: string,
  rs: readonly DecisionRecord[],
  ctx: HostRuleContext,
  namePorts: boolean,
): HostRuleShape {
  const ports = [...new Set(rs.map((r) => r.port))].sort((a, b) => a - b)
  const tunnelled = rs.some((r) => r.method === 'CONNECT' || r.path === null)
  const methods = [...new Set(rs.map((r) => r.method))].sort()
  const paths = !tunnelled && ctx.pathLimited(host) ? foldPaths(rs.map((r) => r.path as string)) : null
  return {
    host,
    ...(!namePorts && ports.every((p) => ctx.defaultPorts.has(p)) ? {} : { ports }),
    ...(tunnelled ? {} : { methods }),
    ...(paths === null ? {} : { paths }),
  }
}

/** Up to four paths as they are; more become their longest common directory and `/**`. */
export function foldPaths(paths: readonly string[]): string[] {
  const distinct = [...new Set(paths)].sort()
  if (distinct.length <= MAX_LISTED_PATHS && distinct.every((p) => !p.includes('*'))) return distinct
  const split = distinct.map((p) => p.split('/').slice(1, -1))
  const first = split[0] ?? []
  let n = 0
  while (n < first.length && split.every((s) => s[n] === first[n] && !(s[n] ?? '').includes('*'))) n++
  return [n === 0 ? '/**' : `/${first.slice(0, n).join('/')}/**`]
}

/** The parent of a host (`a.b.example.com` → `b.example.com`), or null when it must not get a wildcard. */
export function foldableParent(host: string): string | null {
  if (isIpLiteral(host) !== null) return null
  const parent = host.slice(host.indexOf('.') + 1)
  const labels = parent.split('.')
  if (host.indexOf('.') < 0 || labels.length < 2) return null
  // co.uk, com.au, ac.jp …: a second-level public suffix is as wide as a top-level domain.
  if (labels.length === 2 && (labels[1] ?? '').length === 2 && (labels[0] ?? '').length <= 3) return null
  return parent
}

export interface Folded {
  readonly drafts: HostDraft[]
  readonly notes: string[]
}

/** Fold sibling hosts into `*.parent` where that is safe; each refusal is a note. */
export function foldSiblings(drafts: readonly HostDraft[], ctx: HostRuleContext): Folded {
  const byParent = new Map<string, HostDraft[]>()
  const out: HostDraft[] = []
  for (const d of drafts) {
    const parent = d.rule.paths === undefined ? foldableParent(d.rule.host) : null
    if (parent === null) out.push(d)
    else {
      const group = byParent.get(parent)
      if (group === undefined) byParent.set(parent, [d])
      else group.push(d)
    }
  }
  const notes: string[] = []
  const folding: string[] = []
  // A host can have several drafts (ports used differently): siblings are counted by host.
  const siblings = (group: readonly HostDraft[]): number => new Set(group.map((d) => d.rule.host)).size
  for (const [parent, group] of byParent) {
    if (siblings(group) < 2) continue
    const why = refusal(parent, ctx)
    if (why === null) folding.push(parent)
    else notes.push(`not folded into *.${parent}: ${why}; the hosts stay listed one by one`)
  }
  // `*.parent` covers subdomains at any depth: a deeper host (x.y.example.com beside p. and
  // q.example.com) joins the shallowest wildcard that covers it rather than staying a rule of its own.
  // Looked up by the host's own suffixes, shortest first (not by scanning every wildcard per host:
  // that was quadratic, 53 s for 32,000 hosts under 997 parents).
  folding.sort((a, b) => a.split('.').length - b.split('.').length)
  const joined = new Map<string, HostDraft[]>(folding.map((p) => [p, []]))
  for (const [parent, group] of byParent) {
    // Hosts whose own parent was refused stay listed, as its note says, whatever covers them above.
    const refused = siblings(group) >= 2 && !joined.has(parent)
    for (const d of group) {
      const into = refused ? undefined : shallowestCovering(d.rule.host, joined)
      if (into === undefined) out.push(d)
      else into.push(d)
    }
  }
  // A wildcard whose hosts all joined a shallower one (a.example.com's, into *.example.com) is not needed.
  // One wildcard per shape seen on two hosts or more; a shape only one host had stays that host's rule.
  for (const [parent, group] of joined)
    for (const same of byShape(group)) {
      if (siblings(same) >= 2) out.push(merge(parent, same))
      else out.push(...same)
    }
  return { drafts: out, notes }
}

/** The group of the wildcard with the fewest labels that covers `host` (a proper suffix of it), if any. */
function shallowestCovering<T>(host: string, wildcards: ReadonlyMap<string, T>): T | undefined {
  for (let dot = host.lastIndexOf('.'); dot > 0; dot = host.lastIndexOf('.', dot - 1)) {
    const group = wildcards.get(host.slice(dot + 1))
    if (group !== undefined) return group
  }
  return undefined
}

/** Drafts grouped by their rule's ports and methods: a wildcard opens on each host only what one of them had. */
function byShape(drafts: readonly HostDraft[]): HostDraft[][] {
  const groups = new Map<string, HostDraft[]>()
  for (const d of drafts) {
    const key = JSON.stringify([d.rule.ports ?? null, d.rule.methods ?? null])
    const g = groups.get(key)
    if (g) g.push(d)
    else groups.set(key, [d])
  }
  return [...groups.values()]
}

function refusal(parent: string, ctx: HostRuleContext): string | null {
  if (SHARED_PARENTS.has(parent)) return `${parent} is shared hosting (anyone can have a subdomain there)`
  for (const shared of SHARED_PARENTS)
    if (shared.endsWith(`.${parent}`)) return `*.${parent} would cover ${shared}, which is shared hosting`
  const wildcard: HostPattern = { kind: 'wildcard', suffix: parent }
  for (const p of ctx.protected) {
    // A deny pattern inside the wildcard, or one covering it (a deny on *.example.com also denies *.a.example.com).
    const inside =
      (p.pattern.kind === 'exact' && matchHostPattern(wildcard, p.pattern.host)) ||
      (p.pattern.kind === 'wildcard' &&
        (p.pattern.suffix === parent ||
          p.pattern.suffix.endsWith(`.${parent}`) ||
          parent.endsWith(`.${p.pattern.suffix}`)))
    if (inside) return `${formatHostPattern(p.pattern)} is denied on purpose (${p.rule})`
  }
  return null
}

/** Drafts of one shape (byShape) as one `*.parent` rule with that shape. */
function merge(parent: string, group: readonly HostDraft[]): HostDraft {
  const records = group.flatMap((d) => d.records)
  const { ports, methods } = (group[0] as HostDraft).rule
  return {
    rule: {
      host: `*.${parent}`,
      ...(ports === undefined ? {} : { ports }),
      ...(methods === undefined ? {} : { methods }),
    },
    records,
    folded: group.map((d) => d.rule.host).sort(),
  }
}
