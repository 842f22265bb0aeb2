/**
 * Expansion of repo rules (`github:` and the generic `git:`) into host rules
 * with methods and paths (SPEC §3). Every expanded rule keeps the id of the
 * entry that named it, so a decision names `builders.allow[2]`, not an
 * internal rule. PURE: returns data that config/compile.ts compiles.
 *
 * Smart HTTP (git-http-protocol): a fetch is `GET …/info/refs?service=
 * git-upload-pack` then `POST …/git-upload-pack`; a push the same with
 * `git-receive-pack`. Clients may use the URL with or without `.git`.
 *
 * Forges route owner and repository names case-insensitively (GitHub, GitLab and Gitea all serve
 * `acme/Secret` as `acme/secret`), so every repo rule, allow and deny, `github:` and `git:` alike,
 * names its repos in lower case (expandGitRepos, expandGithubRepos) and is compared with the request
 * path as repoCasePath folds it: `Acme/Widgets` in a rule and `acme/WIDGETS` in a URL are one repo.
 */

export type GitAccess = 'read' | 'write'

export interface ExpandedHostRule {
  readonly host: string
  readonly methods: readonly string[] | null
  readonly paths: readonly string[]
  /** Which part of the forge the rule opens (RepoControl.part). */
  readonly part: 'smart_http' | 'api' | 'graphql' | 'download'
}

const READ_METHODS = ['GET', 'HEAD'] as const
const WRITE_API_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const
// owner/name on GitHub; on other forges nested groups (`group/sub/repo`). `*` is a glob within a segment.
const REPO = /^[A-Za-z0-9_.*-]+(\/[A-Za-z0-9_.*-]+)+$/
const GITHUB_REPO = /^[A-Za-z0-9_.*-]+\/[A-Za-z0-9_.*-]+$/

/** null when the repo spec is well-formed; otherwise a message. */
export function checkRepo(repo: string, forGithub: boolean): string | null {
  const ok =
    (forGithub ? GITHUB_REPO : REPO).test(repo) &&
    !repo.split('/').some((s) => s === '.' || s === '..' || s.includes('**'))
  if (ok) return null
  return forGithub
    ? `'${repo}' is not 'owner/name' (a '*' may glob within a part)`
    : `'${repo}' is not a repository path like 'group/name'`
}

/** Smart-HTTP rules for `repos` on `host`. */
export function expandGitRepos(host: string, repos: readonly string[], access: GitAccess): ExpandedHostRule[] {
  const services = access === 'write' ? ['git-upload-pack', 'git-receive-pack'] : ['git-upload-pack']
  const refs: string[] = []
  const rpc: string[] = []
  for (const repo of repos.map(lowerAscii)) {
    for (const base of [`/${repo}`, `/${repo}.git`]) {
      for (const svc of services) {
        refs.push(`${base}/info/refs?service=${svc}`)
        rpc.push(`${base}/${svc}`)
      }
    }
  }
  return [
    { host, methods: [...READ_METHODS], paths: refs, part: 'smart_http' },
    { host, methods: ['POST'], paths: rpc, part: 'smart_http' },
  ]
}

const SERVICE_SUFFIXES = ['/info/refs', '/git-upload-pack', '/git-receive-pack'] as const

/**
 * A request path as repo rules compare it: lower-cased (ASCII; normalised paths are ASCII), except a
 * smart-HTTP service suffix, which stays as written. The push gate and read-only checks recognise
 * `…/git-receive-pack` exactly, so a spelling they would not recognise (`…/GIT-RECEIVE-PACK`) must
 * not match a rule that opens pushes either.
 */
export function repoCasePath(path: string): string {
  const lower = lowerAscii(path)
  if (lower === path) return path
  for (const suffix of SERVICE_SUFFIXES)
    if (lower.endsWith(suffix)) return lower.slice(0, -suffix.length) + path.slice(-suffix.length)
  return lower
}

function lowerAscii(text: string): string {
  return /[^\x00-\x7f]/.test(text) ? text.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : text.toLowerCase()
}

/** A smart-HTTP push (`info/refs?service=git-receive-pack` or `…/git-receive-pack`) to any repo path. */
export function isPushPath(path: string, query: string): boolean {
  return (
    path.endsWith('/git-receive-pack') ||
    (path.endsWith('/info/refs') && /(?:^|&)service=git-receive-pack(?:&|$)/.test(query))
  )
}

/** Smart HTTP on github.com plus archives, codeload, raw and the REST API for the same repos. */
export function expandGithubRepos(written: readonly string[], access: GitAccess): ExpandedHostRule[] {
  const repos = written.map(lowerAscii)
  const rules = expandGitRepos('github.com', repos, access)
  const archives = repos.map((r) => `/${r}/archive/**`)
  const anyPath = repos.map((r) => `/${r}/**`)
  const api = repos.flatMap((r) => [`/repos/${r}`, `/repos/${r}/**`])
  rules.push(
    { host: 'github.com', methods: [...READ_METHODS], paths: archives, part: 'download' },
    { host: 'codeload.github.com', methods: [...READ_METHODS], paths: anyPath, part: 'download' },
    { host: 'raw.githubusercontent.com', methods: [...READ_METHODS], paths: anyPath, part: 'download' },
    { host: 'api.github.com', methods: [...READ_METHODS], paths: api, part: 'api' },
  )
  if (access === 'write')
    rules.push(
      { host: 'api.github.com', methods: [...WRITE_API_METHODS], paths: api, part: 'api' },
      // GraphQL is one endpoint for every repo: queries pass, mutations only as `api.graphql_mutations` lists.
      { host: 'api.github.com', methods: ['POST'], paths: ['/graphql'], part: 'graphql' },
    )
  return rules
}
