/**
 * What `suggest` says about a proposed rule before anyone adds it (SPEC §10 warnings), and why some
 * denials get no rule at all. PURE.
 */
import { classifyAddress, isAddressAllowed } from '../net/address-class.js'
import { isIpLiteral, type Cidr } from '../net/host.js'
import type { DecisionRecord } from '../telemetry/events.js'
import { requestsOf } from './records.js'
import type { SuggestedRule } from './rule-yaml.js'

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** Labels of hosts that take data from anyone: paste bins, file drops, webhook and tunnel services. */
const EXFIL_LABEL =
  /^(?:.*paste.*|.*upload.*|.*webhooks?.*|hooks|hastebin|ghostbin|termbin|sprunge|requestbin|hookbin|pipedream|beeceptor|ngrok|ngrok-free|interactsh|oast(?:ify)?|burpcollaborator|transfer|filebin|catbox|gofile|0x0|temp|tmpfiles|anonfiles|file)$/
const EXFIL_HOSTS = new Set([
  'file.io',
  'transfer.sh',
  'webhook.site',
  'discord.com',
  'discordapp.com',
  'api.telegram.org',
])

/** github.com, its subdomains (api., uploads., codeload.) and `*.github.com`. */
function isGithubHost(host: string): boolean {
  return host === 'github.com' || host.endsWith('.github.com')
}

/** Does the host look like a paste, upload or webhook service (a way for data to leave)? */
export function looksLikeDropHost(host: string): boolean {
  if (isIpLiteral(host) !== null) return false
  if (EXFIL_HOSTS.has(host)) return true
  const labels = host.split('.')
  // The registrable part and the labels before it; the top-level label (`.file`, `.temp`?) is not a service.
  return labels.slice(0, -1).some((l) => EXFIL_LABEL.test(l) && l !== 'files')
}

export function warningsFor(
  rule: SuggestedRule,
  records: readonly DecisionRecord[],
  folded: readonly string[],
  allowPrivate: readonly Cidr[] = [],
): string[] {
  const out: string[] = []
  const requests = records.reduce((n, r) => n + requestsOf(r), 0)
  const isRepo = 'github' in rule || 'git' in rule
  const writes = [
    ...new Set(
      records
        .filter((r) => WRITE_METHODS.has(r.method) && !(isRepo && r.path?.endsWith('/git-upload-pack')))
        .map((r) => r.method),
    ),
  ].sort()
  if ('github' in rule && rule.github.access === 'write')
    out.push('access: write lets the agent push (to push.branches, agent/{agent}/** unless set)')
  if ('git' in rule && rule.git.access === 'write')
    out.push('access: write lets the agent push (to push.branches, agent/{agent}/** unless set)')
  if ('github' in rule && records.some((r) => r.host === 'api.github.com' && WRITE_METHODS.has(r.method)))
    out.push('GitHub API writes also need an `api:` entry (pulls: create, issues: comment)')
  if (writes.length > 0 && !isRepo)
    out.push(`write method${writes.length > 1 ? 's' : ''} ${writes.join(', ')}: data can leave the sandbox`)
  const drops = [...new Set(records.map((r) => r.host))].filter(looksLikeDropHost).sort()
  if (drops.length > 0) out.push(`${drops.join(', ')} looks like a paste, upload or webhook service`)
  const privateIps = [
    ...new Set(
      records.flatMap((r) => [r.address, isIpLiteral(r.host) === null ? null : r.host]).filter((ip) => ip !== null),
    ),
  ].filter((ip) => !isAddressAllowed(ip, allowPrivate))
  for (const ip of privateIps.sort())
    out.push(
      `private address ${ip} (${classifyAddress(ip)}): a rule is not enough, upstream.allow_private must name it`,
    )
  if ('host' in rule && isGithubHost(rule.host) && (rule.methods?.some((m) => WRITE_METHODS.has(m)) ?? true))
    out.push(
      'a host rule on GitHub opens it without the push and API gates (any branch, merges): prefer a github: repo rule',
    )
  if ('host' in rule && rule.host.startsWith('*.'))
    out.push(`admits every subdomain of ${rule.host.slice(2)}, not only the ${folded.length} seen`)
  if ('host' in rule && rule.paths?.includes('/**')) out.push('opens every path on the host')
  if (requests === 1) out.push('seen only once')
  return out
}

/** Why a push or GitHub write that no repo rule answers gets no rule (repo-paths.ts isForgeWrite). */
export const GLOBBED_REPO =
  "its path names a repository with '*' (or another glob character), which a repo rule would read as a wildcard over every repository; write the rule by hand if one is meant"

export const CUT_PATH =
  'the record keeps only the first 1,024 characters of its path, and the policy limits this host by path: a rule naming the cut path would not match the request, and its directory would open more than was seen; write the rule by hand if one is meant'

export const UNLISTABLE_PATH =
  "its path holds '*' or '?' (or is not in normal form), which a path pattern would read as a wildcard or a query, and the policy limits this host by path: a rule naming it would open more than was seen; write the rule by hand if one is meant"

export const UNREADABLE_RECORD =
  'the record names a host, port or method the proxy never decides as written (not in normal form, out of range): an edited or foreign log line; no rule is offered'

export const FORGE_WRITE =
  'a push or GitHub write outside any repo: only a github:/git: repo rule may open it, with its push and API gates (no merge, own branches); no host rule is offered'

/** Why a denial with this reason gets no rule (it is not one an allow rule can lift). */
export const NOT_SUGGESTED: Readonly<Record<string, string>> = {
  denied_by_rule: 'denied on purpose by a deny rule; no allow rule overrides it',
  denied_private_address:
    'the policy allowed it; the address is private (upstream.allow_private would name it, not a rule)',
  denied_rate_limited: 'a rate limit, not a rule (limits:)',
  denied_auth_required: 'no credentials: not a policy decision',
  denied_auth_invalid: 'unknown agent or bad token: not a policy decision',
  denied_sni_mismatch: 'SNI differed from the CONNECT host (domain fronting); no rule allows that',
  denied_host_mismatch: 'Host differed from the CONNECT host; no rule allows that',
  denied_secret_detected: 'a secret in the body (inspect_body); not a host rule',
  denied_git_push: 'refused by push rules (push.branches, force, delete, tags, max_pack_bytes)',
  denied_repo_write: 'a GitHub API write the repo rule does not list (api: pulls, issues, graphql_mutations)',
  denied_package: 'refused by package rules (packages:)',
  denied_internal_error: 'the policy could not be evaluated; not a rule',
  upstream_error: 'the upstream failed; not a policy decision',
}
