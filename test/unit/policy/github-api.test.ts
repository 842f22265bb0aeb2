import t from 'tap'
import {
  MAX_API_BODY_BYTES,
  branchAllowed,
  classifyGithubApiRequest,
  compileGithubApiRule,
  decideGithubApiWrite,
  isValidRefName,
  type GithubApiRule,
  type GithubApiSpec,
} from '../../../src/policy/github-api.js'
import { CONTENT_DETAILS, UNGRANTED_DETAILS, explainDenial } from '../../../src/policy/github-messages.js'
import { FORBIDDEN_ACTIONS } from '../../../src/policy/github-routes.js'

const AGENT = 'ci-42'
const BASE: GithubApiSpec = {
  pulls: 'create',
  issues: 'comment',
  graphqlMutations: ['addComment'],
  push: { branches: ['agent/{agent}/**'], force: false, delete: false, tags: false },
}

function rule(
  over: Partial<Omit<GithubApiSpec, 'push'>> = {},
  push: Partial<GithubApiSpec['push']> = {},
): GithubApiRule {
  const compiled = compileGithubApiRule({ ...BASE, ...over, push: { ...BASE.push, ...push } }, AGENT)
  if (!compiled.ok) throw new Error(compiled.message)
  return compiled.rule
}

const PROPOSE = rule() // pulls: create, issues: comment
const NONE = rule({ pulls: 'none', issues: 'none', graphqlMutations: [] })
const ISSUES_ONLY = rule({ pulls: 'none', issues: 'comment' })
const ISSUE_WRITE = rule({ pulls: 'none', issues: 'write' })
const FORCE = rule({}, { force: true })
const DELETE = rule({}, { delete: true })
const TAGS = rule({}, { tags: true })

const R = '/repos/acme/widgets'
const BIG = { title: 'x'.repeat(MAX_API_BODY_BYTES) }
const NOT_UTF8 = Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) // {"\xff":1}

type Body = object | string | Uint8Array | undefined
type Row = readonly [behaviour: string, rule: GithubApiRule, method: string, path: string, body: Body, expect: string]

function encode(body: Body): Uint8Array | undefined {
  if (body === undefined || body instanceof Uint8Array) return body
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
}

function verdictOf(r: GithubApiRule, method: string, path: string, body: Body, query = ''): string {
  const d = decideGithubApiWrite(r, { method, path, query, body: encode(body) })
  return d.verdict === 'allow' ? 'allow' : d.detail
}

// [behaviour, rule, method, path, body, 'allow' | detail]
const ROWS: readonly Row[] = [
  // Opening pull requests
  [
    'a pull request from an allowed branch is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/fix', base: 'main', title: 't' },
    'allow',
  ],
  [
    'a head spelled owner:branch with the repo owner is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'acme:agent/ci-42/fix', base: 'main' },
    'allow',
  ],
  [
    'the owner in owner:branch compares case-insensitively',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'ACME:agent/ci-42/fix', base: 'main' },
    'allow',
  ],
  [
    'a head from another owner fork is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'mallory:agent/ci-42/fix', base: 'main' },
    'fork_head',
  ],
  [
    'head_repo naming this repository is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/fix', head_repo: 'widgets', base: 'main' },
    'allow',
  ],
  [
    'head_repo naming another repository is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/fix', head_repo: 'widgets-fork', base: 'main' },
    'fork_head',
  ],
  [
    'head_repo that is not a string is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/fix', head_repo: 7, base: 'main' },
    'fork_head',
  ],
  [
    'a pull request from main is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'main', base: 'release' },
    'branch_not_allowed',
  ],
  [
    "a pull request from another agent's branch is refused",
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-7/fix', base: 'main' },
    'branch_not_allowed',
  ],
  [
    'the bare prefix agent/ci-42 is not under agent/ci-42/**',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42', base: 'main' },
    'branch_not_allowed',
  ],
  [
    'a head with .. is not a branch name',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/../../main', base: 'main' },
    'branch_not_allowed',
  ],
  [
    'a pull request without a head is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { base: 'main', title: 't' },
    'branch_not_allowed',
  ],
  [
    'a head that is not a string is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { head: ['agent/ci-42/fix'], base: 'main' },
    'branch_not_allowed',
  ],
  [
    'an inherited head (__proto__) is not read',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    '{"__proto__":{"head":"agent/ci-42/x"},"base":"main"}',
    'branch_not_allowed',
  ],
  [
    'pulls: none refuses opening a pull request',
    NONE,
    'POST',
    `${R}/pulls`,
    { head: 'agent/ci-42/fix', base: 'main' },
    'pull_create',
  ],
  // Bodies
  ['a body that is not JSON is refused', PROPOSE, 'POST', `${R}/pulls`, 'head=agent/ci-42/x', 'unparseable_body'],
  ['a JSON array body is refused', PROPOSE, 'POST', `${R}/pulls`, '[{"head":"agent/ci-42/x"}]', 'unparseable_body'],
  ['a JSON null body is refused', PROPOSE, 'POST', `${R}/pulls`, 'null', 'unparseable_body'],
  [
    'a body over 1 MiB is refused',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    { ...BIG, head: 'agent/ci-42/x' },
    'unparseable_body',
  ],
  ['a body that is not UTF-8 is refused', PROPOSE, 'POST', `${R}/pulls`, NOT_UTF8, 'unparseable_body'],
  [
    'a missing body is refused when the decision needs it',
    PROPOSE,
    'POST',
    `${R}/pulls`,
    undefined,
    'unparseable_body',
  ],
  ['a route that needs no body ignores a bad one', PROPOSE, 'POST', `${R}/pulls/3/comments`, 'not json', 'allow'],
  // Editing pull requests
  [
    'editing a pull request title and body is allowed',
    PROPOSE,
    'PATCH',
    `${R}/pulls/3`,
    { title: 't', body: 'b' },
    'allow',
  ],
  [
    'changing a pull request base is refused',
    PROPOSE,
    'PATCH',
    `${R}/pulls/3`,
    { title: 't', base: 'main' },
    'base_change',
  ],
  ['closing a pull request is refused', PROPOSE, 'PATCH', `${R}/pulls/3`, { state: 'closed' }, 'pull_state'],
  [
    'other pull request keys are refused',
    PROPOSE,
    'PATCH',
    `${R}/pulls/3`,
    { maintainer_can_modify: true },
    'pull_edit',
  ],
  ['pulls: none refuses editing a pull request', NONE, 'PATCH', `${R}/pulls/3`, { title: 't' }, 'pull_edit'],
  // Merging and branch updates
  [
    'merging is refused even with pulls: create',
    PROPOSE,
    'PUT',
    `${R}/pulls/3/merge`,
    { merge_method: 'squash' },
    'merge',
  ],
  ['merging with a trailing slash is refused as merge', PROPOSE, 'PUT', `${R}/pulls/3/merge/`, undefined, 'merge'],
  ['merging spelled in capitals is refused as merge', PROPOSE, 'PUT', `${R}/PULLS/3/MERGE`, undefined, 'merge'],
  ['merging with POST is refused', PROPOSE, 'POST', `${R}/pulls/3/merge`, undefined, 'merge'],
  [
    'merging a branch through /merges is refused',
    PROPOSE,
    'POST',
    `${R}/merges`,
    { base: 'agent/ci-42/x', head: 'main' },
    'merge',
  ],
  [
    'syncing a fork through /merge-upstream is refused',
    PROPOSE,
    'POST',
    `${R}/merge-upstream`,
    { branch: 'main' },
    'merge',
  ],
  ['update-branch is refused', PROPOSE, 'PUT', `${R}/pulls/3/update-branch`, {}, 'update_branch'],
  // Comments
  ['a review comment on a pull request is allowed', PROPOSE, 'POST', `${R}/pulls/3/comments`, { body: 'b' }, 'allow'],
  [
    'a reply to a review comment is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls/3/comments/99/replies`,
    { body: 'b' },
    'allow',
  ],
  [
    'pulls: none and issues: none refuse review comments',
    NONE,
    'POST',
    `${R}/pulls/3/comments`,
    { body: 'b' },
    'pull_comment',
  ],
  [
    'an issue comment is allowed with pulls: create alone',
    rule({ issues: 'none' }),
    'POST',
    `${R}/issues/3/comments`,
    { body: 'b' },
    'allow',
  ],
  [
    'an issue comment is allowed with issues: comment alone',
    ISSUES_ONLY,
    'POST',
    `${R}/issues/3/comments`,
    { body: 'b' },
    'allow',
  ],
  [
    'an issue comment is refused with neither grant',
    NONE,
    'POST',
    `${R}/issues/3/comments`,
    { body: 'b' },
    'issue_comment',
  ],
  ['editing an issue comment is allowed', PROPOSE, 'PATCH', `${R}/issues/comments/5`, { body: 'b' }, 'allow'],
  ['editing a review comment is allowed', PROPOSE, 'PATCH', `${R}/pulls/comments/5`, { body: 'b' }, 'allow'],
  [
    'editing a comment is refused with neither grant',
    NONE,
    'PATCH',
    `${R}/issues/comments/5`,
    { body: 'b' },
    'comment_edit',
  ],
  ['deleting an issue comment is refused', PROPOSE, 'DELETE', `${R}/issues/comments/5`, undefined, 'comment_delete'],
  ['deleting a review comment is refused', PROPOSE, 'DELETE', `${R}/pulls/comments/5`, undefined, 'comment_delete'],
  ['a reaction on an issue is allowed', PROPOSE, 'POST', `${R}/issues/3/reactions`, { content: 'eyes' }, 'allow'],
  [
    'removing a reaction on a comment is allowed',
    PROPOSE,
    'DELETE',
    `${R}/issues/comments/5/reactions/8`,
    undefined,
    'allow',
  ],
  [
    'a reaction is refused with neither grant',
    NONE,
    'POST',
    `${R}/pulls/comments/5/reactions`,
    { content: '+1' },
    'reaction',
  ],
  ['commenting on a commit is refused', PROPOSE, 'POST', `${R}/commits/abc/comments`, { body: 'b' }, 'commit_comment'],
  // Reviews
  [
    'a review with event COMMENT is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews`,
    { event: 'COMMENT', body: 'b' },
    'allow',
  ],
  [
    'a review without event stays pending and is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews`,
    { body: 'b', comments: [] },
    'allow',
  ],
  ['a review with event APPROVE is refused', PROPOSE, 'POST', `${R}/pulls/3/reviews`, { event: 'APPROVE' }, 'approve'],
  [
    'a review with event REQUEST_CHANGES is refused',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews`,
    { event: 'REQUEST_CHANGES', body: 'b' },
    'request_changes',
  ],
  [
    'a review event in lower case is refused',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews`,
    { event: 'approve' },
    'review_event',
  ],
  ['a review event null is refused', PROPOSE, 'POST', `${R}/pulls/3/reviews`, { event: null }, 'review_event'],
  [
    'a review with a duplicate event key is read as JSON.parse reads it (last wins)',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews`,
    '{"event":"COMMENT","event":"APPROVE"}',
    'approve',
  ],
  [
    'submitting a pending review as COMMENT is allowed',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews/9/events`,
    { event: 'COMMENT' },
    'allow',
  ],
  [
    'submitting a pending review as APPROVE is refused',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews/9/events`,
    { event: 'APPROVE' },
    'approve',
  ],
  [
    'submitting a review without event is refused',
    PROPOSE,
    'POST',
    `${R}/pulls/3/reviews/9/events`,
    {},
    'review_event',
  ],
  ['editing a review body is allowed', PROPOSE, 'PUT', `${R}/pulls/3/reviews/9`, { body: 'b' }, 'allow'],
  ['deleting a pending review is allowed', PROPOSE, 'DELETE', `${R}/pulls/3/reviews/9`, undefined, 'allow'],
  ['pulls: none refuses reviews', NONE, 'POST', `${R}/pulls/3/reviews`, { event: 'COMMENT' }, 'review_create'],
  [
    'dismissing a review is refused',
    PROPOSE,
    'PUT',
    `${R}/pulls/3/reviews/9/dismissals`,
    { message: 'm' },
    'dismiss_review',
  ],
  [
    'requesting reviewers is allowed with pulls: create',
    PROPOSE,
    'POST',
    `${R}/pulls/3/requested_reviewers`,
    { reviewers: ['octocat'] },
    'allow',
  ],
  [
    'requesting reviewers is refused with pulls: none',
    NONE,
    'POST',
    `${R}/pulls/3/requested_reviewers`,
    { reviewers: ['o'] },
    'reviewers_request',
  ],
  [
    'removing requested reviewers is refused',
    PROPOSE,
    'DELETE',
    `${R}/pulls/3/requested_reviewers`,
    { reviewers: ['o'] },
    'reviewers_remove',
  ],
  // Issues
  ['issues: comment refuses opening an issue', PROPOSE, 'POST', `${R}/issues`, { title: 't' }, 'issue_create'],
  ['issues: write allows opening an issue', ISSUE_WRITE, 'POST', `${R}/issues`, { title: 't' }, 'allow'],
  ['issues: write allows editing an issue', ISSUE_WRITE, 'PATCH', `${R}/issues/3`, { state: 'closed' }, 'allow'],
  ['issues: comment refuses editing an issue', PROPOSE, 'PATCH', `${R}/issues/3`, { title: 't' }, 'issue_edit'],
  ['issues: write allows adding labels', ISSUE_WRITE, 'POST', `${R}/issues/3/labels`, { labels: ['bug'] }, 'allow'],
  [
    'issues: write allows removing a label whose name has a slash',
    ISSUE_WRITE,
    'DELETE',
    `${R}/issues/3/labels/kind/bug`,
    undefined,
    'allow',
  ],
  ['issues: write allows assignees', ISSUE_WRITE, 'POST', `${R}/issues/3/assignees`, { assignees: ['o'] }, 'allow'],
  ['locking a conversation is refused even with issues: write', ISSUE_WRITE, 'PUT', `${R}/issues/3/lock`, {}, 'lock'],
  ['creating a repository label is refused', ISSUE_WRITE, 'POST', `${R}/labels`, { name: 'x' }, 'labels'],
  ['creating a milestone is refused', ISSUE_WRITE, 'POST', `${R}/milestones`, { title: 'x' }, 'milestone'],
  // Contents API
  [
    'a contents write to an allowed branch is allowed',
    PROPOSE,
    'PUT',
    `${R}/contents/src/a.ts`,
    { message: 'm', content: 'eA==', branch: 'agent/ci-42/x' },
    'allow',
  ],
  [
    'a contents delete on an allowed branch is allowed',
    PROPOSE,
    'DELETE',
    `${R}/contents/src/a.ts`,
    { message: 'm', sha: 'abc', branch: 'agent/ci-42/x' },
    'allow',
  ],
  [
    'a contents write without branch (the default branch) is refused',
    PROPOSE,
    'PUT',
    `${R}/contents/a.ts`,
    { message: 'm', content: 'eA==' },
    'branch_missing',
  ],
  [
    'a contents write to main is refused',
    PROPOSE,
    'PUT',
    `${R}/contents/a.ts`,
    { message: 'm', content: 'eA==', branch: 'main' },
    'branch_not_allowed',
  ],
  [
    'a contents write with a ref-style branch is refused',
    PROPOSE,
    'PUT',
    `${R}/contents/a.ts`,
    { content: 'eA==', branch: 'refs/heads/agent/ci-42/x' },
    'branch_not_allowed',
  ],
  [
    'a contents write whose branch is not a string is refused',
    PROPOSE,
    'PUT',
    `${R}/contents/a.ts`,
    { content: 'eA==', branch: 1 },
    'branch_not_allowed',
  ],
  [
    'a contents write needs no api grant',
    NONE,
    'PUT',
    `${R}/contents/a.ts`,
    { content: 'eA==', branch: 'agent/ci-42/x' },
    'allow',
  ],
  [
    'a contents write without a file path is unlisted',
    PROPOSE,
    'PUT',
    `${R}/contents`,
    { branch: 'agent/ci-42/x' },
    'unlisted',
  ],
  // Git Data API
  [
    'creating an allowed branch ref is allowed',
    PROPOSE,
    'POST',
    `${R}/git/refs`,
    { ref: 'refs/heads/agent/ci-42/x', sha: 'a'.repeat(40) },
    'allow',
  ],
  [
    'creating refs/heads/main is refused',
    PROPOSE,
    'POST',
    `${R}/git/refs`,
    { ref: 'refs/heads/main', sha: 'a' },
    'branch_not_allowed',
  ],
  [
    'creating a tag ref is refused without push.tags',
    PROPOSE,
    'POST',
    `${R}/git/refs`,
    { ref: 'refs/tags/v1', sha: 'a' },
    'tag',
  ],
  [
    'creating a tag ref is allowed with push.tags',
    TAGS,
    'POST',
    `${R}/git/refs`,
    { ref: 'refs/tags/v1', sha: 'a' },
    'allow',
  ],
  [
    'creating a ref outside heads and tags is refused',
    PROPOSE,
    'POST',
    `${R}/git/refs`,
    { ref: 'refs/pull/3/head', sha: 'a' },
    'ref_not_allowed',
  ],
  [
    'creating a ref without refs/ is refused',
    PROPOSE,
    'POST',
    `${R}/git/refs`,
    { ref: 'heads/agent/ci-42/x', sha: 'a' },
    'ref_not_allowed',
  ],
  ['creating a ref without a ref is refused', PROPOSE, 'POST', `${R}/git/refs`, { sha: 'a' }, 'ref_not_allowed'],
  [
    'a fast-forward ref update of an allowed branch is allowed',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/x`,
    { sha: 'b' },
    'allow',
  ],
  [
    'force: false is a fast-forward update',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/x`,
    { sha: 'b', force: false },
    'allow',
  ],
  [
    'a forced ref update is refused without push.force',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/x`,
    { sha: 'b', force: true },
    'force',
  ],
  [
    'a force that is the string "true" counts as force',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/x`,
    { sha: 'b', force: 'true' },
    'force',
  ],
  [
    'a forced ref update is allowed with push.force',
    FORCE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/x`,
    { sha: 'b', force: true },
    'allow',
  ],
  [
    'updating main is refused even with push.force',
    FORCE,
    'PATCH',
    `${R}/git/refs/heads/main`,
    { sha: 'b' },
    'branch_not_allowed',
  ],
  [
    'a branch with %2F in the path is decoded before matching',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent%2Fci-42%2Fx`,
    { sha: 'b' },
    'allow',
  ],
  [
    'an encoded .. in a ref path is refused',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/%2E%2E%2F..%2Fmain`,
    { sha: 'b' },
    'branch_not_allowed',
  ],
  [
    'a ref path that does not decode is refused',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/heads/agent/ci-42/%E0%A4`,
    { sha: 'b' },
    'ref_not_allowed',
  ],
  [
    'moving a tag is refused without push.tags',
    PROPOSE,
    'PATCH',
    `${R}/git/refs/tags/v1`,
    { sha: 'b', force: true },
    'tag',
  ],
  [
    'deleting a branch is refused without push.delete',
    PROPOSE,
    'DELETE',
    `${R}/git/refs/heads/agent/ci-42/x`,
    undefined,
    'delete',
  ],
  [
    'deleting an allowed branch is allowed with push.delete',
    DELETE,
    'DELETE',
    `${R}/git/refs/heads/agent/ci-42/x`,
    undefined,
    'allow',
  ],
  [
    'deleting main is refused even with push.delete',
    DELETE,
    'DELETE',
    `${R}/git/refs/heads/main`,
    undefined,
    'branch_not_allowed',
  ],
  ['deleting a tag is refused without push.tags', DELETE, 'DELETE', `${R}/git/refs/tags/v1`, undefined, 'tag'],
  ['deleting a tag is allowed with push.tags', TAGS, 'DELETE', `${R}/git/refs/tags/v1`, undefined, 'allow'],
  ['creating a blob is allowed with access: write alone', NONE, 'POST', `${R}/git/blobs`, { content: 'x' }, 'allow'],
  ['creating a tree is allowed', NONE, 'POST', `${R}/git/trees`, { tree: [] }, 'allow'],
  ['creating a commit object is allowed', NONE, 'POST', `${R}/git/commits`, { message: 'm', tree: 't' }, 'allow'],
  ['creating a tag object (no ref) is allowed', NONE, 'POST', `${R}/git/tags`, { tag: 'v1' }, 'allow'],
  // Everything else written to the repository
  ['creating a release is refused', PROPOSE, 'POST', `${R}/releases`, { tag_name: 'v1' }, 'release'],
  ['creating a webhook is refused', PROPOSE, 'POST', `${R}/hooks`, { config: {} }, 'hook'],
  ['adding a collaborator is refused', PROPOSE, 'PUT', `${R}/collaborators/mallory`, {}, 'collaborator'],
  ['writing an Actions secret is refused', PROPOSE, 'PUT', `${R}/actions/secrets/TOKEN`, {}, 'secret'],
  [
    'writing an environment secret is refused as a secret',
    PROPOSE,
    'PUT',
    `${R}/environments/prod/secrets/T`,
    {},
    'secret',
  ],
  [
    'dispatching a workflow is refused',
    PROPOSE,
    'POST',
    `${R}/actions/workflows/ci.yml/dispatches`,
    { ref: 'main' },
    'workflow_dispatch',
  ],
  ['a repository_dispatch is refused', PROPOSE, 'POST', `${R}/dispatches`, { event_type: 'x' }, 'workflow_dispatch'],
  ['re-running a workflow is refused', PROPOSE, 'POST', `${R}/actions/runs/1/rerun`, undefined, 'actions'],
  ['changing settings is refused', PROPOSE, 'PATCH', R, { default_branch: 'agent/ci-42/x' }, 'settings'],
  ['deleting the repository is refused', PROPOSE, 'DELETE', R, undefined, 'repo_delete'],
  ['changing branch protection is refused', PROPOSE, 'PUT', `${R}/branches/main/protection`, {}, 'branch_protection'],
  [
    'renaming a branch is refused',
    PROPOSE,
    'POST',
    `${R}/branches/agent/ci-42/x/rename`,
    { new_name: 'main' },
    'branch_rename',
  ],
  ['creating a deployment is refused', PROPOSE, 'POST', `${R}/deployments`, { ref: 'main' }, 'deployment'],
  ['forking is refused', PROPOSE, 'POST', `${R}/forks`, {}, 'fork'],
  ['setting a commit status is refused', PROPOSE, 'POST', `${R}/statuses/abc`, { state: 'success' }, 'status'],
  ['writing a check run is refused', PROPOSE, 'POST', `${R}/check-runs`, {}, 'check'],
  ['adding a deploy key is refused', PROPOSE, 'POST', `${R}/keys`, {}, 'deploy_key'],
  ['creating a tag protection rule is refused', PROPOSE, 'POST', `${R}/tags/protection`, {}, 'tag'],
  ['an unknown repository write is refused as unlisted', PROPOSE, 'POST', `${R}/frobnicate`, {}, 'unlisted'],
  [
    'a pull request route with a non-numeric number is unlisted',
    PROPOSE,
    'PATCH',
    `${R}/pulls/3x`,
    { title: 't' },
    'unlisted',
  ],
  ['a write outside /repos is unlisted', PROPOSE, 'POST', '/user/repos', { name: 'x' }, 'unlisted'],
  // Reads and GraphQL routing
  ['a GET is not decided here', NONE, 'GET', `${R}/pulls/3/merge`, undefined, 'allow'],
  ['GraphQL over POST with a query is allowed', NONE, 'POST', '/graphql', { query: '{ viewer { login } }' }, 'allow'],
  [
    'GraphQL over POST with a listed mutation is allowed',
    PROPOSE,
    'POST',
    '/graphql',
    { query: 'mutation { addComment(input: {}) { clientMutationId } }' },
    'allow',
  ],
  [
    'GraphQL over POST with an unlisted mutation is refused',
    PROPOSE,
    'POST',
    '/graphql',
    { query: 'mutation { mergePullRequest(input: {}) { clientMutationId } }' },
    'graphql_mutation',
  ],
  ['GraphQL over GET is refused', PROPOSE, 'GET', '/graphql', undefined, 'graphql_method'],
  [
    'a GraphQL body that is not JSON is refused as unparseable_body',
    PROPOSE,
    'POST',
    '/graphql',
    'mutation { x }',
    'unparseable_body',
  ],
  [
    'a GraphQL body without a query is refused',
    PROPOSE,
    'POST',
    '/graphql',
    { operationName: 'x' },
    'unparseable_graphql',
  ],
]

for (const [behaviour, r, method, path, body, expected] of ROWS) {
  t.test(behaviour, async (t) => {
    t.equal(verdictOf(r, method, path, body), expected)
  })
}

t.test('an allowed write with a query string is refused (query parameters join the body on GitHub)', async (t) => {
  const cases: ReadonlyArray<readonly [string, string, object]> = [
    ['POST', `${R}/pulls/3/reviews`, { body: 'b' }],
    ['PATCH', `${R}/pulls/3`, { title: 't' }],
    ['POST', `${R}/issues/3/comments`, { body: 'b' }],
    ['POST', '/graphql', { query: '{ viewer { login } }' }],
  ]
  for (const [method, path, body] of cases) {
    t.equal(verdictOf(PROPOSE, method, path, body, 'event=APPROVE'), 'query_params', `${method} ${path}`)
    t.equal(verdictOf(PROPOSE, method, path, body, ''), 'allow', `${method} ${path} without a query`)
  }
})

t.test('a refused write names its action and detail, and an allowed one its action', async (t) => {
  const facts = { method: 'PUT', path: `${R}/pulls/3/merge`, query: '', body: undefined }
  t.match(decideGithubApiWrite(PROPOSE, facts), { verdict: 'deny', action: 'merge', detail: 'merge' })
  const ok = { method: 'POST', path: `${R}/pulls`, query: '', body: encode({ head: 'agent/ci-42/a' }) }
  t.strictSame(decideGithubApiWrite(PROPOSE, ok), { verdict: 'allow', action: 'pull_create' })
  const read = { method: 'HEAD', path: `${R}`, query: '', body: undefined }
  t.strictSame(decideGithubApiWrite(NONE, read), { verdict: 'allow', action: 'read' })
})

const CLASSIFY: ReadonlyArray<
  readonly [string, string, string, { repo: string | null; action: string; needsBody: boolean } | null]
> = [
  ['reads are not classified', 'GET', `${R}/pulls`, null],
  ['OPTIONS on /graphql is not classified', 'OPTIONS', '/graphql', null],
  [
    'opening a pull request needs the body',
    'POST',
    `${R}/pulls`,
    { repo: 'acme/widgets', action: 'pull_create', needsBody: true },
  ],
  [
    'editing a pull request needs the body',
    'PATCH',
    `${R}/pulls/1`,
    { repo: 'acme/widgets', action: 'pull_edit', needsBody: true },
  ],
  [
    'a review needs the body',
    'POST',
    `${R}/pulls/1/reviews`,
    { repo: 'acme/widgets', action: 'review_create', needsBody: true },
  ],
  [
    'submitting a review needs the body',
    'POST',
    `${R}/pulls/1/reviews/2/events`,
    { repo: 'acme/widgets', action: 'review_submit', needsBody: true },
  ],
  [
    'a contents write needs the body',
    'DELETE',
    `${R}/contents/a`,
    { repo: 'acme/widgets', action: 'contents_write', needsBody: true },
  ],
  [
    'a ref creation needs the body',
    'POST',
    `${R}/git/refs`,
    { repo: 'acme/widgets', action: 'ref_create', needsBody: true },
  ],
  [
    'a ref update needs the body',
    'PATCH',
    `${R}/git/refs/heads/x`,
    { repo: 'acme/widgets', action: 'ref_update', needsBody: true },
  ],
  [
    'a ref deletion does not',
    'DELETE',
    `${R}/git/refs/heads/x`,
    { repo: 'acme/widgets', action: 'ref_delete', needsBody: false },
  ],
  [
    'a comment does not',
    'POST',
    `${R}/issues/1/comments`,
    { repo: 'acme/widgets', action: 'issue_comment', needsBody: false },
  ],
  ['a merge does not', 'PUT', `${R}/pulls/1/merge`, { repo: 'acme/widgets', action: 'merge', needsBody: false }],
  ['GraphQL needs the body', 'POST', '/graphql', { repo: null, action: 'graphql', needsBody: true }],
]

for (const [behaviour, method, path, expected] of CLASSIFY) {
  t.test(`classify: ${behaviour}`, async (t) => {
    t.strictSame(classifyGithubApiRequest(method, path), expected)
  })
}

t.test('compile substitutes {agent} in branch patterns', async (t) => {
  t.strictSame(
    PROPOSE.branches.map((b) => b.text),
    ['agent/ci-42/**'],
  )
  t.equal(branchAllowed(PROPOSE, 'agent/ci-42/a/b'), true)
  t.equal(branchAllowed(PROPOSE, 'agent/{agent}/a'), false)
})

t.test('a single-segment glob matches one branch segment only', async (t) => {
  const r = rule({}, { branches: ['bot/*'] })
  t.equal(branchAllowed(r, 'bot/x'), true)
  t.equal(branchAllowed(r, 'bot/x/y'), false)
})

t.test('no branch patterns allow no branch', async (t) => {
  const r = rule({}, { branches: [] })
  t.equal(verdictOf(r, 'POST', `${R}/pulls`, { head: 'agent/ci-42/x' }), 'branch_not_allowed')
})

const BAD_SPECS: ReadonlyArray<readonly [string, Partial<GithubApiSpec['push']>, readonly string[]]> = [
  ['a branch pattern with refs/heads/ is a config error', { branches: ['refs/heads/agent/**'] }, []],
  ['a branch pattern with a leading slash is a config error', { branches: ['/agent/**'] }, []],
  ["a branch pattern with '**' inside a segment is a config error", { branches: ['agent/x**'] }, []],
  ['a mutation name that is not a GraphQL name is a config error', {}, ['add-comment']],
]

for (const [behaviour, push, mutations] of BAD_SPECS) {
  t.test(behaviour, async (t) => {
    const compiled = compileGithubApiRule(
      { ...BASE, graphqlMutations: mutations, push: { ...BASE.push, ...push } },
      AGENT,
    )
    t.equal(compiled.ok, false)
  })
}

const REF_NAMES: ReadonlyArray<readonly [string, boolean]> = [
  ['agent/ci-42/fix', true],
  ['feature-1.2', true],
  ['', false],
  ['@', false],
  ['a..b', false],
  ['a/.hidden', false],
  ['.a', false],
  ['a.lock', false],
  ['a.lock/b', false],
  ['a/', false],
  ['/a', false],
  ['a//b', false],
  ['a.', false],
  ['a@{1}', false],
  ['a b', false],
  ['a:b', false],
  ['a~1', false],
  ['a^', false],
  ['a?', false],
  ['a*', false],
  ['a[', false],
  ['a\\b', false],
  ['a\x7f', false],
]

t.test('branch names follow git check-ref-format', async (t) => {
  for (const [name, valid] of REF_NAMES) t.equal(isValidRefName(name), valid, JSON.stringify(name))
})

t.test('every detail has its own one-sentence message', async (t) => {
  const details = [...UNGRANTED_DETAILS, ...CONTENT_DETAILS, ...FORBIDDEN_ACTIONS]
  for (const detail of details) {
    for (const r of [PROPOSE, NONE]) {
      const m = explainDenial(detail, r)
      t.match(m, /^[A-Z].*\.$/, `${detail}: one sentence`)
      t.notMatch(m, /\n/, `${detail}: one line`)
      t.notMatch(m, /^This write is for people/, `${detail}: a specific message`)
    }
  }
})

t.test('messages say what the agent may do instead, from the rule', async (t) => {
  const d = decideGithubApiWrite(PROPOSE, { method: 'PUT', path: `${R}/pulls/3/merge`, query: '', body: undefined })
  t.match(d, { verdict: 'deny', message: /agent\/ci-42\/\*\*/ })
  t.match(d, { message: /open pull requests/ })
})

t.test('messages never echo request text', async (t) => {
  const marker = 'zz-marker-<script>'
  const cases: ReadonlyArray<readonly [string, string, object]> = [
    ['POST', `${R}/pulls`, { head: marker }],
    ['POST', `${R}/pulls`, { head: `${marker}:agent/ci-42/x` }],
    ['PUT', `${R}/contents/a`, { branch: marker }],
    ['POST', `${R}/git/refs`, { ref: `refs/${marker}` }],
  ]
  for (const [method, path, body] of cases) {
    const d = decideGithubApiWrite(PROPOSE, { method, path, query: '', body: encode(body) })
    t.equal(d.verdict, 'deny')
    if (d.verdict === 'deny') t.notMatch(d.message, /zz-marker/)
  }
})

t.test('a rule that grants nothing says the repository is read-only for the agent', async (t) => {
  const r = rule({ pulls: 'none', issues: 'none' }, { branches: [] })
  t.match(explainDenial('merge', r), /agent ci-42 may only read this repository/)
  t.match(explainDenial('merge', rule({ pulls: 'none', issues: 'none' })), /may push to agent\/ci-42\/\*\*\./)
})

t.test('the ref message mentions tags only when push.tags allows them', async (t) => {
  t.match(explainDenial('ref_not_allowed', TAGS), /and tags/)
  t.notMatch(explainDenial('ref_not_allowed', PROPOSE), /tags/)
})
