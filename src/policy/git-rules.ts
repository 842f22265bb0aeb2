/**
 * github:/git: repo rules → host rules with smart-HTTP paths (PURE).
 * `access: read` → GET …/info/refs?service=git-upload-pack and POST …/git-upload-pack;
 * `write` adds the same for git-receive-pack (push). Each repo with and without `.git`.
 * On GitHub the same repos' archive, raw and API paths are added.
 */
export interface RepoRuleSpec {
  readonly host: string
  readonly methods: readonly string[]
  readonly paths: readonly string[]
}

const READ = ['GET', 'HEAD']

function smartHttp(host: string, repos: readonly string[], access: 'read' | 'write'): RepoRuleSpec[] {
  const services = access === 'write' ? ['git-upload-pack', 'git-receive-pack'] : ['git-upload-pack']
  const refs: string[] = []
  const rpc: string[] = []
  for (const repo of repos) {
    for (const base of [`/${repo}`, `/${repo}.git`]) {
      for (const s of services) {
        refs.push(`${base}/info/refs?service=${s}`)
        rpc.push(`${base}/${s}`)
      }
    }
  }
  return [
    { host, methods: READ, paths: refs },
    { host, methods: ['POST'], paths: rpc },
  ]
}

export function expandGitRule(host: string, repos: readonly string[], access: 'read' | 'write'): RepoRuleSpec[] {
  return smartHttp(host, repos, access)
}

export function expandGithubRule(repos: readonly string[], access: 'read' | 'write'): RepoRuleSpec[] {
  const under = (prefix: string): string[] => repos.flatMap((r) => [`${prefix}/${r}`, `${prefix}/${r}/**`])
  return [
    ...smartHttp('github.com', repos, access),
    { host: 'github.com', methods: READ, paths: repos.flatMap((r) => [`/${r}/archive/**`, `/${r}/releases/download/**`]) },
    { host: 'codeload.github.com', methods: READ, paths: repos.map((r) => `/${r}/**`) },
    { host: 'raw.githubusercontent.com', methods: READ, paths: repos.map((r) => `/${r}/**`) },
    { host: 'api.github.com', methods: access === 'write' ? ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE'] : READ, paths: under('/repos') },
  ]
}
