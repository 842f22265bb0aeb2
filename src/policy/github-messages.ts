/**
 * The `detail` words of GitHub API write denials (reason `denied_repo_write`)
 * and the one sentence each sends the agent: what was refused and what it may
 * do instead. Sentences are built from the rule (agent id, branch patterns,
 * grants) and never from request text. PURE.
 */
import type { GithubApiRule } from './github-api.js'
import type { ForbiddenAction } from './github-routes.js'

/** Details for an action the `api` block does not grant: the action's own name. */
export const UNGRANTED_DETAILS = [
  'pull_create',
  'pull_edit',
  'pull_comment',
  'review_create',
  'review_submit',
  'review_edit',
  'review_delete',
  'reviewers_request',
  'issue_create',
  'issue_edit',
  'issue_comment',
  'comment_edit',
  'reaction',
] as const

/** Details for a grantable action whose request content is refused. */
export const CONTENT_DETAILS = [
  'branch_not_allowed',
  'branch_missing',
  'fork_head',
  'base_change',
  'pull_state',
  'approve',
  'request_changes',
  'review_event',
  'force',
  'delete',
  'ref_not_allowed',
  'query_params',
  'unparseable_body',
  'unparseable_graphql',
  'graphql_mutation',
] as const

export type GithubApiDetail = (typeof UNGRANTED_DETAILS)[number] | (typeof CONTENT_DETAILS)[number] | ForbiddenAction

/** What people keep, for the forbidden actions' sentences: "<x> is for people". */
const FOR_PEOPLE: Partial<Record<GithubApiDetail, string>> = {
  merge: 'Merging',
  dismiss_review: 'Dismissing a review',
  reviewers_remove: 'Removing requested reviewers',
  lock: 'Locking a conversation',
  release: 'Publishing or editing releases',
  tag: 'Creating, moving or deleting tags',
  hook: 'Managing webhooks',
  collaborator: 'Managing collaborators',
  secret: 'Managing secrets',
  actions: 'Managing GitHub Actions',
  workflow_dispatch: 'Starting workflows',
  environment: 'Managing environments',
  deployment: 'Managing deployments',
  branch_protection: 'Changing branch protection',
  branch_rename: 'Renaming branches',
  ruleset: 'Changing rulesets',
  fork: 'Forking the repository',
  status: 'Setting commit statuses',
  check: 'Writing check runs',
  deploy_key: 'Managing deploy keys',
  pages: 'Managing Pages',
  transfer: 'Transferring the repository',
  labels: "Changing the repository's labels",
  milestone: 'Managing milestones',
  commit_comment: 'Commenting on commits',
  project: 'Managing projects',
  codespace: 'Creating codespaces',
  settings: "Changing the repository's settings",
  repo_delete: 'Deleting the repository',
  base_change: "Changing a pull request's base",
  pull_state: 'Closing or reopening a pull request',
  approve: 'Approving a pull request',
  request_changes: 'Requesting changes on a pull request',
}

export function explainDenial(detail: GithubApiDetail, rule: GithubApiRule): string {
  const agent = `agent ${rule.agent}`
  const may = summarizeGrants(rule)
  const branches = branchList(rule)
  switch (detail) {
    case 'pull_create':
    case 'pull_edit':
    case 'pull_comment':
      if (detail === 'pull_edit' && rule.pulls === 'create') {
        return `Agent ${rule.agent} may change only a pull request's title and body.`
      }
      return `Pull requests are not enabled for ${agent} on this repository (api.pulls: none); ${may}.`
    case 'review_create':
    case 'review_submit':
    case 'review_edit':
    case 'review_delete':
    case 'reviewers_request':
      return `Reviews are not enabled for ${agent} on this repository (api.pulls: none); ${may}.`
    case 'issue_create':
    case 'issue_edit':
      return `Opening and editing issues is not enabled for ${agent} on this repository (api.issues: ${rule.issues}); ${may}.`
    case 'issue_comment':
    case 'comment_edit':
    case 'reaction':
      return `Comments are not enabled for ${agent} on this repository (api.pulls and api.issues are none); ${may}.`
    case 'review_event':
      return `Agent ${rule.agent} may submit a review only with event COMMENT, or leave it pending.`
    case 'update_branch':
      return `Updating a pull request's branch through the API is refused because the proxy cannot tell whose branch it is; merge or rebase locally and push to ${branches}.`
    case 'comment_delete':
      return `Deleting comments is refused because the proxy cannot tell the agent's comments from a person's; ${may}.`
    case 'branch_not_allowed':
      return `Agent ${rule.agent} may write only to the branches ${branches} of this repository; ${may}.`
    case 'branch_missing':
      return `A contents write must name its branch (one of ${branches}): the default branch is for people.`
    case 'fork_head':
      return `Agent ${rule.agent} may open pull requests only from its branches ${branches} of this repository, not from another repository.`
    case 'force':
      return `Agent ${rule.agent} may not force-update branches (push.force is off); update ${branches} by fast-forward.`
    case 'delete':
      return `Agent ${rule.agent} may not delete branches (push.delete is off); ${may}.`
    case 'ref_not_allowed':
      return `Agent ${rule.agent} may write only branch refs (refs/heads/${branches})${rule.tags ? ' and tags' : ''}.`
    case 'query_params':
      return 'A write to the GitHub API must carry its parameters in the JSON body, not in the query string.'
    case 'unparseable_body':
      return 'The proxy checks this write from its body, which must be one JSON object of at most 1 MiB.'
    case 'unparseable_graphql':
      return 'The GraphQL request could not be checked: send one JSON object whose "query" parses.'
    case 'graphql_mutation':
      return `This GraphQL mutation is not allowed for ${agent} (api.graphql_mutations); queries pass.`
    case 'graphql_method':
      return 'GraphQL requests must be POSTed as JSON; the proxy checks their mutations.'
    case 'unlisted':
      return `This GitHub API write is not one agents may make; ${may}.`
    default:
      return `${FOR_PEOPLE[detail] ?? 'This write'} is for people; ${may}.`
  }
}

/** "agent ci-42 may push to agent/ci-42/**, open pull requests from there, review with COMMENT and comment". */
export function summarizeGrants(rule: GithubApiRule): string {
  const parts: string[] = []
  if (rule.branches.length > 0) parts.push(`push to ${branchList(rule)}`)
  if (rule.pulls === 'create') parts.push('open pull requests from there', 'review with COMMENT')
  if (rule.issues === 'write') parts.push('open and edit issues')
  if (rule.pulls === 'create' || rule.issues !== 'none') parts.push('comment')
  if (parts.length === 0) return `agent ${rule.agent} may only read this repository`
  const last = parts.pop() as string
  return `agent ${rule.agent} may ${parts.length === 0 ? last : `${parts.join(', ')} and ${last}`}`
}

function branchList(rule: GithubApiRule): string {
  return rule.branches.length === 0 ? '(none)' : rule.branches.map((b) => b.text).join(', ')
}
