import type { IncomingMessage } from 'node:http'
import type { RepoControl } from '../policy/compiled.js'
import { apiRuleOf, classifyGithubApiRequest, decideGithubApiWrite, MAX_API_BODY_BYTES } from '../policy/github-api.js'
import type { DenyDecision, RuleId } from '../policy/types.js'
import { readBounded } from './read-body.js'

/** What the gate found: let the request through (with its body, when it was read), or refuse it. */
export type ApiGateOutcome =
  { readonly kind: 'pass'; readonly body?: Buffer } | { readonly kind: 'deny'; readonly decision: DenyDecision }

/**
 * GitHub API writes on a repo rule with `access: write` (SPEC §8): the I/O edge of
 * policy/github-api.ts. Reads pass untouched. A write is classified by method and path; when its
 * verdict depends on the body, the body is read (at most 1 MiB) before anything goes upstream and is
 * forwarded as read. Refused: an encoded body (what the API decodes is what must be decided), and whatever
 * decideGithubApiWrite refuses, as `denied_repo_write` with its detail and a sentence that says what
 * agents may do instead.
 */
export async function gateGithubApi(
  req: IncomingMessage,
  facts: { readonly agent: string; readonly method: string; readonly path: string; readonly query: string },
  repo: RepoControl,
  ruleId: RuleId | null,
): Promise<ApiGateOutcome> {
  if (repo.api === null || repo.access !== 'write') return { kind: 'pass' }
  const route = classifyGithubApiRequest(facts.method, facts.path)
  if (route === null) return { kind: 'pass' }
  const deny = (detail: string, explanation?: string): ApiGateOutcome => ({
    kind: 'deny',
    decision: {
      verdict: 'deny',
      reason: 'denied_repo_write',
      ruleId,
      detail,
      ...(explanation === undefined ? {} : { explanation }),
    },
  })
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
  if (encoding !== 'identity' && encoding !== '')
    return deny('encoded_body', 'GitHub API writes must send their JSON body uncompressed')
  // Compiled per write, not per read: reads are most of an agent's API traffic.
  const rule = apiRuleOf(repo, facts.agent)
  if (rule === null) return { kind: 'pass' }
  if (!rule.ok) return deny('bad_rule', `the repo rule could not be applied: ${rule.message}`)
  let body: Buffer | undefined
  if (route.needsBody) {
    const read = await readBounded(req, MAX_API_BODY_BYTES + 1)
    if (read === 'cut_off') return deny('body_cut_off', 'the request body ended early')
    if (read === 'too_large')
      return deny('unparseable_body', 'a GitHub API write body larger than 1 MiB is not decided')
    body = read
  }
  const d = decideGithubApiWrite(rule.rule, { method: facts.method, path: facts.path, query: facts.query, body })
  if (d.verdict === 'deny') return deny(d.detail, d.message)
  return body === undefined ? { kind: 'pass' } : { kind: 'pass', body }
}

/** Headers some framework reads as the request's real method (Rails, Express, ASP.NET, Symfony). */
const METHOD_OVERRIDE_HEADERS: ReadonlySet<string> = new Set([
  'x-http-method-override',
  'x-method-override',
  'x-http-method',
])

/**
 * Does the request ask the server to act on another method than the one decided: a method override
 * header, or a `_method` query parameter (Rails, Laravel, Symfony)? Refused on every request a repo
 * rule handles, reads included (a GET the rule allows must not merge as a PUT). Header names are
 * compared as CGI and Rack read them, `_` as `-` in any case (`X_HTTP_METHOD_OVERRIDE` is
 * HTTP_X_HTTP_METHOD_OVERRIDE there); parameter names decoded, `;` as a separator, leading
 * spaces dropped and case ignored, as path-pattern's deny readings take them.
 */
export function asksMethodOverride(req: IncomingMessage, query: string): boolean {
  for (const name of Object.keys(req.headers))
    if (METHOD_OVERRIDE_HEADERS.has(name.toLowerCase().replaceAll('_', '-'))) return true
  if (query === '') return false
  return query.split(/[&;]/).some((param) => {
    const eq = param.indexOf('=')
    const key = (eq < 0 ? param : param.slice(0, eq)).replace(/\+/g, ' ')
    let name = key
    try {
      name = decodeURIComponent(key)
    } catch {
      // Left as written: a lenient server reads the escapes it can.
    }
    return name.trimStart().toLowerCase() === '_method'
  })
}
