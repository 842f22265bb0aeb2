/**
 * The GitHub REST routes that write to a repository, as Portcullis names them
 * (SPEC §8). Routes from GitHub's REST reference (octokit's endpoint list):
 * every write an agent may be granted is listed exactly; every other write is
 * named by its first segment after `/repos/{owner}/{repo}/` (releases, hooks,
 * …) or is `unlisted`, and is never allowed. PURE.
 *
 * Literal segments compare case-insensitively (a server that routes
 * case-sensitively answers 404 to the other spelling; one that does not acts
 * on it as on ours) and one trailing slash is ignored, as Rails routing does.
 */

/** Writes the `api` block (or `access: write` alone) can allow. */
export type GrantableAction =
  | 'pull_create'
  | 'pull_edit'
  | 'pull_comment'
  | 'review_create'
  | 'review_submit'
  | 'review_edit'
  | 'review_delete'
  | 'reviewers_request'
  | 'issue_create'
  | 'issue_edit'
  | 'issue_comment'
  | 'comment_edit'
  | 'reaction'
  | 'contents_write'
  | 'ref_create'
  | 'ref_update'
  | 'ref_delete'
  | 'git_object'
  | 'graphql'

/** Writes that are for people whatever the rule says; each is also the denial's detail. */
export const FORBIDDEN_ACTIONS = [
  'merge',
  'update_branch',
  'dismiss_review',
  'reviewers_remove',
  'comment_delete',
  'lock',
  'graphql_method',
  'release',
  'tag',
  'hook',
  'collaborator',
  'secret',
  'actions',
  'workflow_dispatch',
  'environment',
  'deployment',
  'branch_protection',
  'branch_rename',
  'ruleset',
  'fork',
  'status',
  'check',
  'deploy_key',
  'pages',
  'transfer',
  'labels',
  'milestone',
  'commit_comment',
  'project',
  'codespace',
  'settings',
  'repo_delete',
  'unlisted',
] as const
export type ForbiddenAction = (typeof FORBIDDEN_ACTIONS)[number]

export type GithubApiAction = 'read' | GrantableAction | ForbiddenAction

/** What a request is, for the caller: whether it must read the body before asking for a decision. */
export interface GithubApiRequest {
  /** `owner/name` from the path; null for `/graphql` and paths outside `/repos/{owner}/{repo}`. */
  readonly repo: string | null
  readonly action: Exclude<GithubApiAction, 'read'>
  readonly needsBody: boolean
}

export interface Route extends GithubApiRequest {
  /** Set for ForbiddenAction routes: the detail of their denial. */
  readonly forbidden: ForbiddenAction | null
  /** `refs/heads/…` or `refs/tags/…` named by a `git/refs/…` path, percent-decoded; null otherwise or when undecodable. */
  readonly ref: string | null
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS'])
const FORBIDDEN: ReadonlySet<string> = new Set(FORBIDDEN_ACTIONS)

/** `:n` is a number, `**` one or more segments (last only); other segments are literals. */
type RouteSpec = readonly [method: string, pattern: string, action: Route['action'], needsBody?: boolean]

const ROUTES: readonly RouteSpec[] = [
  ['POST', 'pulls', 'pull_create', true],
  ['PATCH', 'pulls/:n', 'pull_edit', true],
  ['PUT', 'pulls/:n/merge', 'merge'],
  ['PUT', 'pulls/:n/update-branch', 'update_branch'],
  ['POST', 'pulls/:n/comments', 'pull_comment'],
  ['POST', 'pulls/:n/comments/:n/replies', 'pull_comment'],
  ['PATCH', 'pulls/comments/:n', 'comment_edit'],
  ['DELETE', 'pulls/comments/:n', 'comment_delete'],
  ['POST', 'pulls/comments/:n/reactions', 'reaction'],
  ['DELETE', 'pulls/comments/:n/reactions/:n', 'reaction'],
  ['POST', 'pulls/:n/reviews', 'review_create', true],
  ['PUT', 'pulls/:n/reviews/:n', 'review_edit'],
  ['DELETE', 'pulls/:n/reviews/:n', 'review_delete'],
  ['POST', 'pulls/:n/reviews/:n/events', 'review_submit', true],
  ['PUT', 'pulls/:n/reviews/:n/dismissals', 'dismiss_review'],
  ['POST', 'pulls/:n/requested_reviewers', 'reviewers_request'],
  ['DELETE', 'pulls/:n/requested_reviewers', 'reviewers_remove'],
  ['POST', 'pulls/:n/codespaces', 'codespace'],
  ['POST', 'issues', 'issue_create'],
  ['PATCH', 'issues/:n', 'issue_edit'],
  ['POST', 'issues/:n/comments', 'issue_comment'],
  ['PATCH', 'issues/comments/:n', 'comment_edit'],
  ['DELETE', 'issues/comments/:n', 'comment_delete'],
  ['POST', 'issues/comments/:n/reactions', 'reaction'],
  ['DELETE', 'issues/comments/:n/reactions/:n', 'reaction'],
  ['POST', 'issues/:n/reactions', 'reaction'],
  ['DELETE', 'issues/:n/reactions/:n', 'reaction'],
  ['POST', 'issues/:n/labels', 'issue_edit'],
  ['PUT', 'issues/:n/labels', 'issue_edit'],
  ['DELETE', 'issues/:n/labels', 'issue_edit'],
  ['DELETE', 'issues/:n/labels/**', 'issue_edit'],
  ['POST', 'issues/:n/assignees', 'issue_edit'],
  ['DELETE', 'issues/:n/assignees', 'issue_edit'],
  ['POST', 'issues/:n/sub_issues', 'issue_edit'],
  ['DELETE', 'issues/:n/sub_issue', 'issue_edit'],
  ['PATCH', 'issues/:n/sub_issues/priority', 'issue_edit'],
  ['POST', 'issues/:n/dependencies/blocked_by', 'issue_edit'],
  ['DELETE', 'issues/:n/dependencies/blocked_by/:n', 'issue_edit'],
  ['PUT', 'issues/:n/lock', 'lock'],
  ['DELETE', 'issues/:n/lock', 'lock'],
  ['PUT', 'contents/**', 'contents_write', true],
  ['DELETE', 'contents/**', 'contents_write', true],
  ['POST', 'git/blobs', 'git_object'],
  ['POST', 'git/trees', 'git_object'],
  ['POST', 'git/commits', 'git_object'],
  ['POST', 'git/tags', 'git_object'],
  ['POST', 'git/refs', 'ref_create', true],
  ['PATCH', 'git/refs/**', 'ref_update', true],
  ['DELETE', 'git/refs/**', 'ref_delete'],
]

const COMPILED = ROUTES.map(([method, pattern, action, needsBody = false]) => ({
  method,
  segments: pattern.split('/'),
  action,
  needsBody,
}))

/** The first segment after the repo, for writes no route lists. */
const BY_SEGMENT: ReadonlyMap<string, ForbiddenAction> = new Map<string, ForbiddenAction>([
  ['releases', 'release'],
  ['tags', 'tag'],
  ['hooks', 'hook'],
  ['collaborators', 'collaborator'],
  ['invitations', 'collaborator'],
  ['actions', 'actions'],
  ['dispatches', 'workflow_dispatch'],
  ['environments', 'environment'],
  ['deployments', 'deployment'],
  ['branches', 'branch_protection'],
  ['rulesets', 'ruleset'],
  ['forks', 'fork'],
  ['merges', 'merge'],
  ['merge-upstream', 'merge'],
  ['statuses', 'status'],
  ['check-runs', 'check'],
  ['check-suites', 'check'],
  ['keys', 'deploy_key'],
  ['pages', 'pages'],
  ['transfer', 'transfer'],
  ['labels', 'labels'],
  ['milestones', 'milestone'],
  ['comments', 'commit_comment'],
  ['commits', 'commit_comment'],
  ['projects', 'project'],
  ['codespaces', 'codespace'],
])

/** Classify a request to api.github.com; null for reads (GET, HEAD, OPTIONS), which this module does not decide. */
export function classifyGithubApiRequest(method: string, path: string): GithubApiRequest | null {
  const route = classifyRoute(method, path)
  return route === null ? null : { repo: route.repo, action: route.action, needsBody: route.needsBody }
}

export function classifyRoute(method: string, path: string): Route | null {
  if (path === '/graphql' || path === '/graphql/') {
    if (method === 'POST') return route(null, 'graphql', true)
    // GraphQL over GET carries its document in the query string, which a GitHub-side reader may execute.
    return method === 'OPTIONS' ? null : route(null, 'graphql_method')
  }
  if (READS.has(method)) return null
  const all = path.split('/')
  if (all[all.length - 1] === '' && all.length > 2) all.pop()
  if (all[0] !== '' || all[1]?.toLowerCase() !== 'repos' || !all[2] || !all[3]) return route(null, 'unlisted')
  const repo = `${all[2]}/${all[3]}`
  const rest = all.slice(4)
  if (rest.length === 0) return route(repo, method === 'DELETE' ? 'repo_delete' : 'settings')
  for (const r of COMPILED) {
    if (r.method === method && matchSegments(r.segments, rest)) {
      const ref = r.action === 'ref_update' || r.action === 'ref_delete' ? refFromPath(rest.slice(2)) : null
      return route(repo, r.action, r.needsBody, ref)
    }
  }
  return route(repo, forbiddenFor(rest))
}

function route(repo: string | null, action: Route['action'], needsBody = false, ref: string | null = null): Route {
  return { repo, action, needsBody, ref, forbidden: FORBIDDEN.has(action) ? (action as ForbiddenAction) : null }
}

function matchSegments(pattern: readonly string[], rest: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string
    const s = rest[i]
    if (s === undefined || s === '') return false
    if (p === '**') return rest.slice(i).every((x) => x !== '')
    if (p === ':n' ? !/^\d+$/.test(s) : p !== s.toLowerCase()) return false
  }
  return rest.length === pattern.length
}

function forbiddenFor(rest: readonly string[]): ForbiddenAction {
  const lower = rest.map((s) => s.toLowerCase())
  // Secrets live under several parents (actions, dependabot, codespaces, environments).
  if (lower.includes('secrets')) return 'secret'
  if (lower.includes('dispatches')) return 'workflow_dispatch'
  // Any other spelling of a pull request merge (POST, the asynchronous merge) is still a merge.
  if (lower[0] === 'pulls' && lower.some((s) => s.startsWith('merge'))) return 'merge'
  if (lower[0] === 'branches' && lower[lower.length - 1] === 'rename') return 'branch_rename'
  return BY_SEGMENT.get(lower[0] ?? '') ?? 'unlisted'
}

/** `heads/a/b` (the REST form, after `git/refs/`) → `refs/heads/a/b`, %-decoded as the server will read it. */
function refFromPath(parts: readonly string[]): string | null {
  try {
    return `refs/${decodeURIComponent(parts.join('/'))}`
  } catch {
    return null
  }
}
