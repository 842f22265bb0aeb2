/**
 * Rule compilation: host rules, presets and repo rules → CompiledRule, with
 * the rule ids of SPEC §3 (`builders.allow[2]`, `agents.ci-42.deny[0]`). A
 * preset or repo rule expands to several rules that all keep the id of the
 * entry that named them.
 */
import type { CompiledRule, InjectHeader } from '../policy/compiled.js'
import { expandGitRepos, expandGithubRepos, checkRepo, type ExpandedHostRule } from '../policy/git-rules.js'
import { parseHostPattern, type HostPattern } from '../policy/host-pattern.js'
import { parsePathPattern, type PathPattern } from '../policy/path-pattern.js'
import type { Issues, KeyPath } from './issues.js'
import { BUILTIN_PRESETS } from './presets.js'
import type { RawConfig, RawHostRule, RawRule } from './schema.js'

/** A compiled rule before it is given an id, an effect and a position. */
export type RuleSpec = Omit<CompiledRule, 'id' | 'effect' | 'ordinal'>

export interface RuleCompiler {
  /** Compile one allow/deny list; `idPrefix` is `builders` or `agents.ci-42`. */
  compileList(list: readonly RawRule[], effect: 'allow' | 'deny', idPrefix: string, path: KeyPath): CompiledRule[]
}

export function createRuleCompiler(raw: RawConfig, issues: Issues): RuleCompiler {
  const presets = compilePresets(raw, issues)
  let ordinal = 0
  const compileList: RuleCompiler['compileList'] = (list, effect, idPrefix, path) => {
    const out: CompiledRule[] = []
    list.forEach((entry, i) => {
      const id = `${idPrefix}.${effect}[${i}]`
      if (effect === 'deny') checkDenySpec(entry, [...path, i], issues)
      for (const spec of expandEntry(entry, [...path, i], presets, issues)) {
        out.push(Object.freeze({ ...spec, id, effect, ordinal: ordinal++ }))
      }
    })
    return out
  }
  return { compileList }
}

/** User presets override built-in ones of the same name. Errors are reported where the preset is defined. */
function compilePresets(raw: RawConfig, issues: Issues): Map<string, readonly RuleSpec[]> {
  const out = new Map<string, readonly RuleSpec[]>()
  for (const [name, rules] of BUILTIN_PRESETS) out.set(name, compileSpecs(rules, ['builtin-presets', name], issues))
  for (const [name, rules] of Object.entries(raw.presets)) out.set(name, compileSpecs(rules, ['presets', name], issues))
  return out
}

function compileSpecs(rules: readonly RawHostRule[], path: KeyPath, issues: Issues): RuleSpec[] {
  const out: RuleSpec[] = []
  rules.forEach((r, i) => {
    const spec = compileHostRule(r, [...path, i], issues)
    if (spec) out.push(spec)
  })
  return out
}

function expandEntry(
  entry: RawRule,
  path: KeyPath,
  presets: Map<string, readonly RuleSpec[]>,
  issues: Issues,
): readonly RuleSpec[] {
  if ('host' in entry) {
    const spec = compileHostRule(entry, path, issues)
    return spec ? [spec] : []
  }
  if ('preset' in entry) {
    const found = presets.get(entry.preset)
    if (found) return found
    const known = [...presets.keys()].sort().join(', ')
    issues.add([...path, 'preset'], `unknown preset '${entry.preset}' (known: ${known})`)
    return []
  }
  if ('github' in entry) {
    const { repos, access } = entry.github
    if (!checkRepos(repos, true, [...path, 'github', 'repos'], issues)) return []
    return compileExpanded(expandGithubRepos(repos, access), [...path, 'github'], issues)
  }
  const { host, repos, access } = entry.git
  if (!checkRepos(repos, false, [...path, 'git', 'repos'], issues)) return []
  const pattern = parseHost(host, [...path, 'git', 'host'], issues)
  if (!pattern) return []
  return compileExpanded(expandGitRepos(host, repos, access), [...path, 'git'], issues)
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

function compileExpanded(rules: readonly ExpandedHostRule[], path: KeyPath, issues: Issues): RuleSpec[] {
  return compileSpecs(
    rules.map((r) => ({ host: r.host, methods: r.methods ? [...r.methods] : undefined, paths: [...r.paths] })),
    path,
    issues,
  )
}

function compileHostRule(raw: RawHostRule, path: KeyPath, issues: Issues): RuleSpec | null {
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
  }
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
