/**
 * GitHub API writes on a repo rule with `access: write` (SPEC §8: agents
 * propose, humans merge). PURE: method, path, query and body bytes in, a
 * verdict out. The caller maps a denial to `denied_repo_write` with `detail`.
 *
 * Evaluation order (decideGithubApiWrite):
 *  1. Reads (GET, HEAD, OPTIONS) are not decided here: allow. GraphQL over GET
 *     is the exception (a query string may carry a mutation): `graphql_method`.
 *  2. The route is looked up (classifyGithubApiRequest). A write this module
 *     never allows (merge, dismissing reviews, releases, hooks, settings, …, or
 *     any route not in the table: `unlisted`) is denied with its own detail.
 *  3. A write the `api` block does not grant (pulls, issues) is denied with the
 *     action as detail.
 *  4. A write that could be allowed must carry no query string (`query_params`):
 *     GitHub's framework merges query parameters into the request's parameters,
 *     so `?event=APPROVE` or `?base=main` must not ride past a checked body.
 *  5. Routes whose verdict depends on the body need one JSON object of at most
 *     MAX_API_BODY_BYTES (`unparseable_body` otherwise), then its content is
 *     checked: the pull request's head, the review event, the edited keys, the
 *     branch of a contents write, the ref and `force` of a ref write, the
 *     mutations of a GraphQL document (github-graphql.ts).
 * Allowed routes are matched exactly; everything else is denied, so a route
 * spelled in a way this table does not know is refused, never let through.
 * Denial messages are built from the rule only, never from request text.
 */
import { decideGraphql } from './github-graphql.js'
import { matchPathPattern, parsePathPattern, type PathPattern } from './path-pattern.js'
import { classifyRoute, type GithubApiAction, type Route } from './github-routes.js'
import { explainDenial, type GithubApiDetail } from './github-messages.js'
import type { RepoControl } from './compiled.js'

export type { GithubApiAction } from './github-routes.js'
export type { GithubApiDetail } from './github-messages.js'
export { classifyGithubApiRequest, type GithubApiRequest } from './github-routes.js'

/** The most body bytes a decision reads; the caller reads at most one more and passes what it got. */
export const MAX_API_BODY_BYTES = 1024 * 1024

export type PullsGrant = 'none' | 'create'
export type IssuesGrant = 'none' | 'comment' | 'write'

/** The `api` and `push` blocks of one repo rule, as configured (defaults applied, `{agent}` not yet substituted). */
export interface GithubApiSpec {
  readonly pulls: PullsGrant
  readonly issues: IssuesGrant
  readonly graphqlMutations: readonly string[]
  readonly push: {
    readonly branches: readonly string[]
    readonly force: boolean
    readonly delete: boolean
    readonly tags: boolean
  }
}

export interface BranchPattern {
  /** As configured, with `{agent}` substituted: `agent/ci-42/**`. */
  readonly text: string
  /** `/` + text, compiled as a path glob (`*` one segment, `**` any). */
  readonly pattern: PathPattern
}

/** One repo rule compiled for one agent. */
export interface GithubApiRule {
  readonly agent: string
  readonly pulls: PullsGrant
  readonly issues: IssuesGrant
  readonly graphqlMutations: readonly string[]
  readonly branches: readonly BranchPattern[]
  readonly force: boolean
  readonly delete: boolean
  readonly tags: boolean
}

export type CompiledGithubApiRule =
  { readonly ok: true; readonly rule: GithubApiRule } | { readonly ok: false; readonly message: string }

export interface GithubApiFacts {
  /** Upper-case method token. */
  readonly method: string
  /** Output of net/url-path.normalizePath (no query). */
  readonly path: string
  /** Raw query without the `?`; '' when absent. */
  readonly query: string
  /** The request body as read (at most MAX_API_BODY_BYTES + 1 bytes); undefined when none was read. */
  readonly body: Uint8Array | undefined
}

export type GithubApiDecision =
  | { readonly verdict: 'allow'; readonly action: GithubApiAction }
  | {
      readonly verdict: 'deny'
      readonly action: GithubApiAction
      /** Short snake_case word for the record's `detail`. */
      readonly detail: GithubApiDetail
      /** One sentence for the agent: what was refused and what it may do instead. */
      readonly message: string
    }

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/

/**
 * Compile a rule's `api`/`push` blocks for one agent: `{agent}` is replaced by the agent id in every
 * branch pattern (agent ids hold no `*` or `/`, so the substitution cannot widen a glob). Call once
 * per (rule, agent) at config compile time; an error here is a config error.
 */
export function compileGithubApiRule(spec: GithubApiSpec, agent: string): CompiledGithubApiRule {
  const branches: BranchPattern[] = []
  for (const raw of spec.push.branches) {
    const text = raw.split('{agent}').join(agent)
    if (text.startsWith('/') || text.startsWith('refs/') || text.includes('?')) {
      return { ok: false, message: `branch pattern '${raw}': name branches as 'agent/{agent}/**', without refs/heads/` }
    }
    const parsed = parsePathPattern(`/${text}`)
    if (!parsed.ok) return { ok: false, message: `branch pattern '${raw}': ${parsed.message}` }
    branches.push(Object.freeze({ text, pattern: parsed.pattern }))
  }
  const badName = spec.graphqlMutations.find((m) => !GRAPHQL_NAME.test(m))
  if (badName !== undefined) return { ok: false, message: `graphql_mutations: '${badName}' is not a GraphQL name` }
  const { pulls, issues } = spec
  const { force, delete: del, tags } = spec.push
  const graphqlMutations = Object.freeze([...spec.graphqlMutations])
  const rule = { agent, pulls, issues, graphqlMutations, branches: Object.freeze(branches), force, delete: del, tags }
  return { ok: true, rule: Object.freeze(rule) }
}

/**
 * The API rule a repo rule applies to `agent`'s writes: null when it applies none (a read-only rule, or
 * a `git:` rule, whose forge API is unknown).
 */
export function apiRuleOf(repo: RepoControl, agent: string): CompiledGithubApiRule | null {
  if (repo.api === null || repo.access !== 'write') return null
  const { pulls, issues, graphqlMutations } = repo.api
  return compileGithubApiRule({ pulls, issues, graphqlMutations, push: repo.push }, agent)
}

/** Decide one write to api.github.com for a repo the caller has matched to `rule`. */
export function decideGithubApiWrite(rule: GithubApiRule, facts: GithubApiFacts): GithubApiDecision {
  const route = classifyRoute(facts.method, facts.path)
  if (route === null) return { verdict: 'allow', action: 'read' }
  return routeVerdict(rule, route, facts.query) ?? bodyVerdict(rule, route, facts.body)
}

/**
 * Steps 1–4 alone: the verdict of a write's method, path and query, or 'body' when it depends on the
 * body. For deciding without the request (portcullis explain, policy tests, replay): what the route
 * refuses, the proxy refuses whatever the body says.
 */
export function decideGithubApiRoute(
  rule: GithubApiRule,
  facts: Omit<GithubApiFacts, 'body'>,
): GithubApiDecision | 'body' {
  const route = classifyRoute(facts.method, facts.path)
  if (route === null) return { verdict: 'allow', action: 'read' }
  return routeVerdict(rule, route, facts.query) ?? 'body'
}

function denial(rule: GithubApiRule, action: GithubApiAction, detail: GithubApiDetail): GithubApiDecision {
  return { verdict: 'deny', action, detail, message: explainDenial(detail, rule) }
}

/** The verdict of the route and query; null when the body decides. */
function routeVerdict(rule: GithubApiRule, route: Route, query: string): GithubApiDecision | null {
  const { action } = route
  if (route.forbidden !== null) return denial(rule, action, route.forbidden)
  const missing = missingGrant(rule, action)
  if (missing !== null) return denial(rule, action, missing)
  if (query !== '') return denial(rule, action, 'query_params')
  if (route.needsBody) return null
  // A branch or tag deletion is named by the path alone.
  const refused = action === 'ref_delete' ? checkRef(rule, route.ref ?? '', 'delete', false) : null
  return refused === null ? { verdict: 'allow', action } : denial(rule, action, refused)
}

function bodyVerdict(rule: GithubApiRule, route: Route, bytes: Uint8Array | undefined): GithubApiDecision {
  const { action } = route
  const deny = (detail: GithubApiDetail): GithubApiDecision => denial(rule, action, detail)
  const body = parseApiBody(bytes)
  if (body === null || (action !== 'graphql' && !isObject(body))) return deny('unparseable_body')
  if (action === 'graphql') return decideGraphql(body, rule.graphqlMutations)
  const refused = checkBody(rule, action, route.repo, route.ref, body as Record<string, unknown>)
  return refused === null ? { verdict: 'allow', action } : deny(refused)
}

/** null when the `api` block grants the action; otherwise the action itself, as the detail. */
function missingGrant(rule: GithubApiRule, action: GithubApiAction): GithubApiDetail | null {
  const pulls = rule.pulls === 'create'
  switch (action) {
    case 'pull_create':
    case 'pull_edit':
    case 'pull_comment':
    case 'review_create':
    case 'review_submit':
    case 'review_edit':
    case 'review_delete':
    case 'reviewers_request':
      return pulls ? null : action
    // Pull request conversations are issue comments on GitHub: the proxy cannot tell
    // `/issues/7/comments` on a pull request from one on an issue, so either grant allows it.
    case 'issue_comment':
    case 'comment_edit':
    case 'reaction':
      return pulls || rule.issues !== 'none' ? null : action
    case 'issue_create':
    case 'issue_edit':
      return rule.issues === 'write' ? null : action
    default:
      return null
  }
}

/** The body's verdict for an action that needs one: null to allow, else the detail. */
function checkBody(
  rule: GithubApiRule,
  action: GithubApiAction,
  repo: string | null,
  pathRef: string | null,
  body: Record<string, unknown>,
): GithubApiDetail | null {
  switch (action) {
    case 'pull_create':
      return checkPullHead(rule, repo ?? '', body)
    case 'pull_edit':
      return checkPullEdit(body)
    case 'review_create':
      // No event leaves the review pending; it can only be submitted through review_submit.
      return Object.hasOwn(body, 'event') ? checkReviewEvent(own(body, 'event')) : null
    case 'review_submit':
      return checkReviewEvent(own(body, 'event'))
    case 'contents_write': {
      const branch = own(body, 'branch')
      if (branch === undefined) return 'branch_missing'
      return typeof branch === 'string' && branchAllowed(rule, branch) ? null : 'branch_not_allowed'
    }
    case 'ref_create': {
      const ref = own(body, 'ref')
      return typeof ref === 'string' ? checkRef(rule, ref, 'create', false) : 'ref_not_allowed'
    }
    case 'ref_update': {
      // Only `false` (or no `force`) is a fast-forward-only update; any other value may be read as true.
      const force = own(body, 'force')
      return checkRef(rule, pathRef ?? '', 'update', force !== undefined && force !== false)
    }
    default:
      // Only the actions above are routed with needsBody; a new one must say here what it checks.
      return 'unlisted'
  }
}

function checkPullHead(rule: GithubApiRule, repo: string, body: Record<string, unknown>): GithubApiDetail | null {
  const [owner = '', name = ''] = repo.split('/')
  const headRepo = own(body, 'head_repo')
  if (headRepo !== undefined) {
    const same =
      typeof headRepo === 'string' && [name.toLowerCase(), repo.toLowerCase()].includes(headRepo.toLowerCase())
    if (!same) return 'fork_head'
  }
  const head = own(body, 'head')
  if (typeof head !== 'string') return 'branch_not_allowed'
  const colon = head.indexOf(':')
  // `owner:branch` names a branch of that owner's fork; only this repository's owner is the agent's.
  if (colon >= 0 && head.slice(0, colon).toLowerCase() !== owner.toLowerCase()) return 'fork_head'
  return branchAllowed(rule, colon >= 0 ? head.slice(colon + 1) : head) ? null : 'branch_not_allowed'
}

/** Title and body only: `base` and `state` are for people, and no other key is needed to propose. */
function checkPullEdit(body: Record<string, unknown>): GithubApiDetail | null {
  for (const key of Object.keys(body)) {
    if (key === 'base') return 'base_change'
    if (key === 'state') return 'pull_state'
    if (key !== 'title' && key !== 'body') return 'pull_edit'
  }
  return null
}

function checkReviewEvent(event: unknown): GithubApiDetail | null {
  if (event === 'COMMENT') return null
  if (event === 'APPROVE') return 'approve'
  if (event === 'REQUEST_CHANGES') return 'request_changes'
  return 'review_event'
}

/**
 * A ref write: `refs/heads/<b>` with `<b>` allowed (and `force`/`delete` as `push` says), or
 * `refs/tags/<t>` with `push.tags`; nothing else.
 */
export function checkRef(
  rule: GithubApiRule,
  ref: string,
  op: 'create' | 'update' | 'delete',
  force: boolean,
): GithubApiDetail | null {
  if (ref.startsWith('refs/tags/') && isValidRefName(ref.slice('refs/tags/'.length))) return rule.tags ? null : 'tag'
  if (!ref.startsWith('refs/heads/')) return 'ref_not_allowed'
  if (!branchAllowed(rule, ref.slice('refs/heads/'.length))) return 'branch_not_allowed'
  if (op === 'delete' && !rule.delete) return 'delete'
  if (op === 'update' && force && !rule.force) return 'force'
  return null
}

/** Is `branch` (no refs/heads/) a valid branch name that one of the rule's patterns matches? */
export function branchAllowed(rule: GithubApiRule, branch: string): boolean {
  if (!isValidRefName(branch)) return false
  const path = `/${branch}`
  return rule.branches.some((b) => matchPathPattern(b.pattern, path, ''))
}

// git check-ref-format: no controls, space, ~ ^ : ? * [ \, no `..`, `@{` or `//`, no component
// starting with `.` or ending with `.lock`, no leading or trailing `/`, no trailing `.`, not `@`.
const REF_BAD_CHAR = /[\x00-\x20\x7f~^:?*[\\]/
const REF_BAD_SEQUENCE = /\.\.|@\{|\/\/|(^|\/)\.|\.lock(\/|$)|^\/|\/$|\.$/

/** A ref name git would accept; anything else is refused before matching so no reading of it can differ. */
export function isValidRefName(name: string): boolean {
  return name !== '' && name !== '@' && !REF_BAD_CHAR.test(name) && !REF_BAD_SEQUENCE.test(name)
}

/** UTF-8 JSON of at most MAX_API_BODY_BYTES, or null (also for a body that is JSON `null`, which no route accepts). */
export function parseApiBody(bytes: Uint8Array | undefined): unknown {
  if (bytes === undefined || bytes.byteLength > MAX_API_BODY_BYTES) return null
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown
  } catch {
    return null
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined
}
