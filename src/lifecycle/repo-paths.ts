/**
 * Which repository a recorded request was using, so `suggest` can answer git traffic with a repo
 * rule (`github:` / `git:`, SPEC §3 and §8) instead of a host rule that would open every repository
 * on the forge. The shapes are those policy/git-rules.ts expands a repo rule into: smart HTTP on any
 * host, and on GitHub also archives, codeload, raw and the REST API of the same repo. PURE.
 */
import { checkRepo } from '../policy/git-rules.js'
import type { DecisionRecord } from '../telemetry/events.js'

export interface RepoUse {
  readonly forge: 'github' | 'git'
  /** The git host (for `git:` rules); github.com for GitHub. */
  readonly host: string
  /** `owner/name` (GitHub) or `group/…/name`, without `.git`. */
  readonly repo: string
  /** The request needs `access: write` (a push, or a write through the API). */
  readonly write: boolean
  /** A write through api.github.com, which also needs an `api:` entry. */
  readonly apiWrite: boolean
}

const SMART_HTTP = /^\/(.+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/
const GITHUB_ARCHIVE = /^\/([^/]+\/[^/]+)\/archive\//
const OWNER_REPO_PREFIX = /^\/([^/]+\/[^/]+)(?:\/|$)/
const API_REPO = /^\/repos\/([^/]+\/[^/]+)(?:\/|$)/
const READ = new Set(['GET', 'HEAD'])

type Facts = Pick<DecisionRecord, 'host' | 'method' | 'path' | 'reason' | 'detail' | 'git'>

/**
 * The request's path names a repository with a glob character (such as owner `*` and name `*`): taken as a repo
 * rule's name it would be a wildcard over every repository, so `suggest` offers no rule for it.
 */
export function namesGlobbedRepo(r: Facts): boolean {
  if (r.path === null || r.method === 'CONNECT') return false
  const repo = SMART_HTTP.exec(r.path)?.[1] ?? githubRepoOf(r)?.repo
  return repo !== undefined && /[*?[\]{}]/.test(repo)
}

export function repoUseOf(r: Facts): RepoUse | null {
  if (r.path === null || r.method === 'CONNECT') return null
  const pushed = r.git !== undefined || (r.reason === 'denied_repo_write' && r.detail === 'read_only')
  const smart = SMART_HTTP.exec(r.path)
  if (smart) {
    const github = r.host === 'github.com'
    const repo = smart[1] as string
    if (checkRepo(repo, github) !== null) return null
    const write = pushed || smart[2] === 'git-receive-pack'
    return { forge: github ? 'github' : 'git', host: r.host, repo, write, apiWrite: false }
  }
  const github = githubRepoOf(r)
  if (github === null || checkRepo(github.repo, true) !== null) return null
  const write = !READ.has(r.method)
  return { forge: 'github', host: 'github.com', repo: github.repo, write, apiWrite: write && github.api }
}

function githubRepoOf(r: Facts): { repo: string; api: boolean } | null {
  const path = r.path as string
  let m: RegExpExecArray | null = null
  if (r.host === 'github.com') m = GITHUB_ARCHIVE.exec(path)
  else if (r.host === 'codeload.github.com' || r.host === 'raw.githubusercontent.com') m = OWNER_REPO_PREFIX.exec(path)
  else if (r.host === 'api.github.com') {
    const api = API_REPO.exec(path)
    return api ? { repo: api[1] as string, api: true } : null
  }
  return m ? { repo: (m[1] as string).replace(/\.git$/, ''), api: false } : null
}

/** Hosts of GitHub's web and API writes: a host rule there would skip the push and API gates. */
const GITHUB_WRITE_HOSTS = new Set(['github.com', 'api.github.com', 'uploads.github.com'])

/**
 * A write only a repo rule may open (SPEC §8): any write to GitHub, and a git push on any host. Its
 * gates (push branches, API routes: no merge) come with the repo rule alone; a host or preset rule
 * opening it would let a push to main or a merge through unchecked.
 */
export function isForgeWrite(r: Pick<DecisionRecord, 'host' | 'method' | 'path'>): boolean {
  if (READ.has(r.method) || r.method === 'OPTIONS' || r.method === 'CONNECT') return false
  return GITHUB_WRITE_HOSTS.has(r.host) || /git-receive-pack/i.test(r.path ?? '')
}
