/**
 * Policy tests (SPEC §10): expectations about the policy kept next to the config and checked by
 * `portcullis check` and on every reload.
 *
 *   - { agent: ci-42, request: "GET https://registry.npmjs.org/react", expect: allowed }
 *   - { agent: ci-42, request: "PUT https://registry.npmjs.org/react", expect: denied_method, rule: developers.allow[0] }
 *   - { agent: ci-42, request: "CONNECT pastebin.com:443", expect: denied_no_rule }
 *
 * `request` is `METHOD URL` (an absolute http/https URL) or `CONNECT host:port` (the CONNECT alone);
 * `expect` is `allowed` or a reason code; `rule`, when given, must be the rule that decided. A test
 * holds the honest policy verdict (decide-offline.ts: audit mode and approvals do not change it).
 * The file is a YAML list, or a mapping with the list under `tests:`. PURE: text in, results out.
 */
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import { z } from 'zod'
import type { RuntimeConfig } from '../config/types.js'
import { formatAuthority, parseAuthority } from '../net/host.js'
import { normalizePath, splitTarget } from '../net/url-path.js'
import { REASONS } from '../policy/reasons.js'
import { decideOffline, type OfflineDecision, type OfflineFacts } from './decide-offline.js'

export interface PolicyTest {
  readonly line: number
  readonly name: string | null
  readonly agent: string
  readonly request: string
  readonly facts: Omit<OfflineFacts, 'agent'>
  readonly expect: string
  readonly rule: string | null
}

export interface TestFileProblem {
  readonly line: number
  readonly col: number
  readonly message: string
}

export type ParsedTests =
  | { readonly ok: true; readonly tests: readonly PolicyTest[] }
  | { readonly ok: false; readonly problems: readonly TestFileProblem[] }

const entrySchema = z.strictObject({
  name: z.string().min(1).optional(),
  agent: z.string().min(1),
  request: z.string().min(1),
  expect: z.enum(REASONS, { message: "must be 'allowed' or a reason code such as denied_no_rule (docs/reasons.md)" }),
  rule: z.string().min(1).optional(),
})

const METHOD = /^[A-Z]{1,20}$/

/** `METHOD URL` or `CONNECT host:port` → the facts to decide, or why it cannot be read. */
export function parseTestRequest(text: string): Omit<OfflineFacts, 'agent'> | string {
  const parts = text.trim().split(/\s+/)
  if (parts.length !== 2) return `request must be "METHOD URL" (e.g. "GET https://registry.npmjs.org/react")`
  const [method, target] = parts as [string, string]
  if (!METHOD.test(method)) return `'${method}' is not an upper-case HTTP method`
  if (method === 'CONNECT') {
    const hp = parseAuthority(target)
    if (hp === null) return `CONNECT needs host:port, not '${target}'`
    return { method, scheme: 'https', host: hp.host, port: hp.port, path: null, query: '' }
  }
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(target)
  if (!m) return `'${target}' is not an absolute http:// or https:// URL`
  const scheme = (m[1] as string).toLowerCase() as 'http' | 'https'
  const hp = parseAuthority(m[2] as string, scheme === 'https' ? 443 : 80)
  if (hp === null) return `'${m[2] as string}' is not a valid host[:port]`
  const rest = m[3] as string
  const { path: raw, query } = splitTarget(rest === '' || rest.startsWith('?') ? `/${rest}` : rest)
  const path = normalizePath(raw)
  if (path === null) return `the path of '${target}' is malformed`
  return { method, scheme, host: hp.host, port: hp.port, path, query }
}

export function parsePolicyTests(text: string): ParsedTests {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true })
  const at = (node: Node | null | undefined): { line: number; col: number } =>
    lineCounter.linePos(node?.range?.[0] ?? 0)
  if (doc.errors.length > 0) {
    // The first syntax error; the rest are usually its echoes. An unquoted `rule: g.allow[0]` inside
    // `{ … }` is the classic one: `[` opens a list there.
    const e = doc.errors[0] as (typeof doc.errors)[number]
    const pos = lineCounter.linePos(e.pos[0])
    const line = text.split('\n')[pos.line - 1] ?? ''
    const hint = /\{[^}]*rule:\s*[^"'\s,}]+\[/.test(line) ? ' (quote rule ids inside { … }: rule: "g.allow[0]")' : ''
    return {
      ok: false,
      problems: [
        {
          ...pos,
          message: `YAML: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}${hint}`,
        },
      ],
    }
  }
  let list: unknown = doc.contents
  if (isMap(list)) list = list.get('tests', true)
  if (doc.contents === null) return { ok: true, tests: [] }
  if (!isSeq(list)) return { ok: false, problems: [{ ...at(doc.contents), message: 'expected a list of tests' }] }
  const tests: PolicyTest[] = []
  const problems: TestFileProblem[] = []
  list.items.forEach((item) => {
    const node = item as Node
    const parsed = entrySchema.safeParse((node as { toJSON?: () => unknown }).toJSON?.() ?? null)
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const key = issue.path[0]
        const keyNode = isMap(node) && typeof key === 'string' ? (node.get(key, true) as Node | undefined) : undefined
        const what = issue.code === 'unrecognized_keys' ? `unknown key '${issue.keys.join("', '")}'` : issue.message
        problems.push({ ...at(keyNode ?? node), message: `${typeof key === 'string' ? `${key}: ` : ''}${what}` })
      }
      return
    }
    const e = parsed.data
    const facts = parseTestRequest(e.request)
    if (typeof facts === 'string') {
      problems.push({ ...at(isMap(node) ? (node.get('request', true) as Node) : node), message: `request: ${facts}` })
      return
    }
    tests.push({
      line: at(node).line,
      name: e.name ?? null,
      agent: e.agent,
      request: e.request,
      facts,
      expect: e.expect,
      rule: e.rule ?? null,
    })
  })
  return problems.length > 0 ? { ok: false, problems } : { ok: true, tests }
}

export interface TestFailure {
  readonly test: PolicyTest
  readonly got: OfflineDecision
  /** One line: what was expected, what was decided instead. */
  readonly message: string
}

export interface TestRun {
  readonly passed: number
  readonly failures: readonly TestFailure[]
}

export function runPolicyTests(config: RuntimeConfig, tests: readonly PolicyTest[]): TestRun {
  const failures: TestFailure[] = []
  for (const test of tests) {
    const got = decideOffline(config, { ...test.facts, agent: test.agent })
    const reasonOk = got.reason === test.expect
    const ruleOk = test.rule === null || got.rule === test.rule
    if (reasonOk && ruleOk) continue
    failures.push({ test, got, message: failureMessage(config, test, got) })
  }
  return { passed: tests.length - failures.length, failures }
}

function failureMessage(config: RuntimeConfig, test: PolicyTest, got: OfflineDecision): string {
  const what = test.name ?? `${test.agent} ${describe(test)}`
  const expected = `${test.expect}${test.rule === null ? '' : ` by ${test.rule}`}`
  const detail = got.detail === undefined ? '' : `, detail ${got.detail}`
  const unknown = got.detail === 'unknown_agent' ? ` (no agent '${test.agent}' in ${config.file})` : ''
  return `${what}: expected ${expected}, got ${got.reason} (rule ${got.rule ?? '-'}${detail})${unknown}`
}

function describe(test: PolicyTest): string {
  const f = test.facts
  if (f.path === null) return `CONNECT ${formatAuthority(f.host, f.port)}`
  const port = f.port === (f.scheme === 'https' ? 443 : 80) ? '' : `:${f.port}`
  return `${f.method} ${f.scheme}://${f.host.includes(':') ? `[${f.host}]` : f.host}${port}${f.path}${f.query ? `?${f.query}` : ''}`
}

/** `file:line: message`, the form every failure and problem is printed in. */
export function formatTestLine(file: string, line: number, message: string): string {
  return `${file}:${line}: ${message}`
}
