/**
 * Rule compilation: host rules, presets and repo rules → CompiledRule, with
 * the rule ids of SPEC §3 (`builders.allow[2]`, `agents.ci-42.deny[0]`). A
 * preset or repo rule expands to several rules that all keep the id of the
 * entry that named them.
 */
import type { CompiledRule, InjectHeader, PushControl, RepoControl } from '../policy/compiled.js'
import { expandGitRepos, expandGithubRepos, checkRepo, type ExpandedHostRule } from '../policy/git-rules.js'
import { parseHostPattern, type HostPattern } from '../policy/host-pattern.js'
import { parsePathPattern, type PathPattern } from '../policy/path-pattern.js'
import type { Issues, KeyPath } from './issues.js'
import { BUILTIN_PRESETS } from './presets.js'
import type { RawApi, RawConfig, RawHostRule, RawPackages, RawPush, RawRule } from './schema.js'
import { compilePackageControl, type DenyFiles } from './compile-packages.js'
import type { Ecosystem } from '../packages/rules.js'
import { parseSizeBytes } from '../byte-size.js'

/** A compiled rule before it is given an id, an effect and a position. */
export type RuleSpec = Omit<CompiledRule, 'id' | 'effect' | 'ordinal'>

export interface RuleCompiler {
  /** Compile one allow/deny list; `idPrefix` is `builders` or `agents.ci-42`. */
  compileList(list: readonly RawRule[], effect: 'allow' | 'deny', idPrefix: string, path: KeyPath): CompiledRule[]
}

export function createRuleCompiler(raw: RawConfig, issues: Issues, files: DenyFiles = new Map()): RuleCompiler {
  const presets = compilePresets(raw, issues, files)
  let ordinal = 0
  const compileList: RuleCompiler['compileList'] = (list, effect, idPrefix, path) => {
    const out: CompiledRule[] = []
    list.forEach((entry, i) => {
      const id = `${idPrefix}.${effect}[${i}]`
      if (effect === 'deny') checkDenySpec(entry, [...path, i], issues)
      for (const spec of expandEntry(entry, [...path, i], presets, issues, files)) {
        out.push(Object.freeze({ ...spec, id, effect, ordinal: ordinal++ }))
      }
    })
    return out
  }
  return { compileList }
}

/** User presets override built-in ones of the same name. Errors are reported where the preset is defined. */
function compilePresets(raw: RawConfig, issues: Issues, files: DenyFiles): Map<string, readonly RuleSpec[]> {
  const out = new Map<string, readonly RuleSpec[]>()
  for (const [name, rules] of BUILTIN_PRESETS)
    out.set(name, compileSpecs(rules, ['builtin-presets', name], issues, files))
  for (const [name, rules] of Object.entries(raw.presets))
    out.set(name, compileSpecs(rules, ['presets', name], issues, files))
  return out
}

function compileSpecs(rules: readonly RawHostRule[], path: KeyPath, issues: Issues, files: DenyFiles): RuleSpec[] {
  const out: RuleSpec[] = []
  rules.forEach((r, i) => {
    const spec = compileHostRule(r, [...path, i], issues, files)
    if (spec) out.push(spec)
  })
  return out
}

function expandEntry(
  entry: RawRule,
  path: KeyPath,
  presets: Map<string, readonly RuleSpec[]>,
  issues: Issues,
  files: DenyFiles,
): readonly RuleSpec[] {
  if ('host' in entry) {
    const spec = compileHostRule(entry, path, issues, files)
    return spec ? [spec] : []
  }
  if ('preset' in entry) {
    const found = presets.get(entry.preset)
    if (found && entry.packages !== undefined)
      return withPackages(found, entry.preset, entry.packages, path, issues, files)
    if (found) return found
    const known = [...presets.keys()].sort().join(', ')
    issues.add([...path, 'preset'], `unknown preset '${entry.preset}' (known: ${known})`)
    return []
  }
  if ('github' in entry) {
    const g = entry.github
    const at: KeyPath = [...path, 'github']
    const preset = g.preset === 'github-agent' ? GITHUB_AGENT : null
    const access = g.access ?? (preset ? 'write' : 'read')
    if (!checkRepos(g.repos, true, [...at, 'repos'], issues)) return []
    const control = repoControl('github', access, g.push, { ...preset?.api, ...g.api }, g.token_env, at, issues)
    return compileExpanded(expandGithubRepos(g.repos, access), control, at, issues)
  }
  const g = entry.git
  const at: KeyPath = [...path, 'git']
  if (!checkRepos(g.repos, false, [...at, 'repos'], issues)) return []
  const pattern = parseHost(g.host, [...at, 'host'], issues)
  if (!pattern) return []
  const control = repoControl('git', g.access, g.push, null, g.token_env, at, issues)
  return compileExpanded(expandGitRepos(g.host, g.repos, g.access), control, at, issues)
}

/** The `github-agent` preset: push to agent/{agent}/** (the push defaults), open pull requests, comment. */
const GITHUB_AGENT: { readonly api: RawApi } = { api: { pulls: 'create', issues: 'comment' } }

const DEFAULT_PUSH: PushControl = Object.freeze({
  branches: Object.freeze(['agent/{agent}/**']),
  force: false,
  delete: false,
  tags: false,
  maxPackBytes: 100 * 1024 * 1024,
})

/** RepoControl without `part` (each expanded rule adds its own). */
type RepoSpec = Omit<RepoControl, 'part'>

function repoControl(
  forge: 'github' | 'git',
  access: 'read' | 'write',
  push: RawPush | undefined,
  api: RawApi | null,
  tokenEnv: string | undefined,
  path: KeyPath,
  issues: Issues,
): RepoSpec {
  if (access === 'read' && push !== undefined)
    issues.add([...path, 'push'], "'push' needs access: write (a read-only repo cannot be pushed to)", true)
  if (access === 'read' && api !== null && Object.keys(api).length > 0)
    issues.add([...path, 'api'], "'api' needs access: write (reads need no grant)", true)
  for (const [i, b] of (push?.branches ?? []).entries()) {
    const problem = branchPatternProblem(b)
    if (problem !== null) issues.add([...path, 'push', 'branches', i], problem)
  }
  for (const [i, m] of (api?.graphql_mutations ?? []).entries())
    if (!/^[_A-Za-z][_0-9A-Za-z]*$/.test(m))
      issues.add([...path, 'api', 'graphql_mutations', i], `'${m}' is not a GraphQL mutation name`)
  return {
    forge,
    access,
    push: {
      branches: push?.branches ?? DEFAULT_PUSH.branches,
      force: push?.force ?? DEFAULT_PUSH.force,
      delete: push?.delete ?? DEFAULT_PUSH.delete,
      tags: push?.tags ?? DEFAULT_PUSH.tags,
      maxPackBytes:
        push?.max_pack_bytes === undefined ? DEFAULT_PUSH.maxPackBytes : (parseSizeBytes(push.max_pack_bytes) ?? 0),
    },
    api:
      api === null
        ? null
        : { pulls: api.pulls ?? 'none', issues: api.issues ?? 'none', graphqlMutations: api.graphql_mutations ?? [] },
    tokenEnv: tokenEnv ?? null,
  }
}

/** A branch glob as `push.branches` takes it: a name under refs/heads/, `{agent}` and globs allowed. */
function branchPatternProblem(text: string): string | null {
  if (text.startsWith('/') || text.startsWith('refs/'))
    return `'${text}': name the branch without refs/heads/ or a leading '/'`
  const parsed = parsePathPattern(`/${text.replaceAll('{agent}', 'agent')}`)
  return parsed.ok ? null : `'${text}' is not a branch pattern (${parsed.message})`
}

function checkRepos(repos: readonly string[], forGithub: boolean, path: KeyPath, issues: Issues): boolean {
  let ok = true
  repos.forEach((repo, i) => {
    const problem = checkRepo(repo, forGithub)
    if (problem) {
      issues.add([...path, i], problem)
      ok = false
    }
  })
  return ok
}

function compileExpanded(
  rules: readonly ExpandedHostRule[],
  spec: RepoSpec,
  path: KeyPath,
  issues: Issues,
): RuleSpec[] {
  const out: RuleSpec[] = []
  for (const r of rules) {
    const compiled = compileHostRule(
      { host: r.host, methods: r.methods ? [...r.methods] : undefined, paths: [...r.paths] },
      path,
      issues,
    )
    if (compiled === null) continue
    const repo: RepoControl = Object.freeze({ ...spec, part: r.part })
    out.push({ ...compiled, repo, injectHeaders: tokenHeaders(repo) })
  }
  return out
}

/**
 * token_env: the forge credential added upstream for the repos' git and API requests, replacing any
 * the client sent; git takes it as HTTP Basic `x-access-token:<token>`, the API as a Bearer token.
 * Never on `/graphql`: a GraphQL document is not scoped to a repository (a query may read any repo,
 * a mutation take any repository id), so the token there would reach past the rule's repos.
 */
function tokenHeaders(repo: RepoControl): readonly InjectHeader[] {
  if (repo.tokenEnv === null || repo.part === 'graphql') return []
  const header: InjectHeader =
    repo.part === 'api'
      ? { name: 'Authorization', env: repo.tokenEnv, format: 'Bearer {}' }
      : { name: 'Authorization', env: repo.tokenEnv, format: '{}', basicUser: 'x-access-token' }
  return Object.freeze([Object.freeze(header)])
}

function compileHostRule(
  raw: RawHostRule,
  path: KeyPath,
  issues: Issues,
  files: DenyFiles = new Map(),
): RuleSpec | null {
  const host = parseHost(raw.host, [...path, 'host'], issues)
  const paths = raw.paths ? compilePaths(raw.paths, [...path, 'paths'], issues) : null
  if (!host || (raw.paths && !paths)) return null
  const injectHeaders: InjectHeader[] = Object.entries(raw.inject_headers ?? {}).map(([name, h]) =>
    Object.freeze({ name, env: h.env, format: h.format ?? '{}' }),
  )
  return {
    host,
    ports: raw.ports ? new Set(raw.ports) : null,
    methods: raw.methods ? new Set(raw.methods) : null,
    paths,
    interceptNever: raw.intercept === 'never',
    injectHeaders: Object.freeze(injectHeaders),
    inspectBody: raw.inspect_body === true,
    repo: null,
    packages:
      raw.packages === undefined
        ? null
        : compilePackageControl(
            raw.packages,
            raw.packages.registry,
            raw.packages.index ?? (host.kind === 'exact' ? host.host : null),
            [...path, 'packages'],
            issues,
            files,
          ),
  }
}

/** The registry presets a packages block applies to, and where a PyPI file's upload time is looked up. */
const PACKAGE_PRESETS: Readonly<Record<string, { readonly ecosystem: Ecosystem; readonly index: string | null }>> = {
  npm: { ecosystem: 'npm', index: null },
  pypi: { ecosystem: 'pypi', index: 'pypi.org' },
}

/** A registry preset's rules, each carrying the entry's package guard. */
function withPackages(
  specs: readonly RuleSpec[],
  preset: string,
  block: RawPackages,
  path: KeyPath,
  issues: Issues,
  files: DenyFiles,
): readonly RuleSpec[] {
  const kind = PACKAGE_PRESETS[preset]
  if (kind === undefined) {
    issues.add(
      [...path, 'packages'],
      `'packages' applies to the npm and pypi presets (or a host rule with packages.registry), not '${preset}'`,
      true,
    )
    return specs
  }
  const control = compilePackageControl(block, kind.ecosystem, kind.index, [...path, 'packages'], issues, files)
  return control === null ? specs : specs.map((s) => ({ ...s, packages: control }))
}

function parseHost(text: string, path: KeyPath, issues: Issues): HostPattern | null {
  const parsed = parseHostPattern(text)
  if (parsed.ok) return parsed.pattern
  issues.add(path, parsed.message)
  return null
}

function compilePaths(texts: readonly string[], path: KeyPath, issues: Issues): readonly PathPattern[] | null {
  const out: PathPattern[] = []
  texts.forEach((text, i) => {
    const parsed = parsePathPattern(text)
    if (parsed.ok) out.push(parsed.pattern)
    else issues.add([...path, i], parsed.message)
  })
  return out.length === texts.length ? Object.freeze(out) : null
}

/** inject_headers, inspect_body and intercept describe how allowed traffic is handled; on a deny rule they mean nothing. */
function checkDenySpec(entry: RawRule, path: KeyPath, issues: Issues): void {
  if (!('host' in entry)) return
  for (const key of ['inject_headers', 'inspect_body', 'intercept'] as const) {
    if (entry[key] !== undefined) issues.add([...path, key], `'${key}' only applies to allow rules`, true)
  }
}
