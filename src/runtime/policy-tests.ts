/**
 * Policy tests at the edges that need them: `portcullis check`, start-up and every reload (SPEC §10:
 * a reload whose tests fail is refused like an invalid edit, and /healthz names the test). The file
 * is read here; parsing and deciding are lifecycle/policy-tests.ts. Reading is synchronous: it runs
 * on a reload or a CLI command, never on the data path, and the policy state's vet step is synchronous.
 */
import { readFileSync } from 'node:fs'
import type { RuntimeConfig } from '../config/types.js'
import {
  formatTestLine,
  parsePolicyTests,
  runPolicyTests,
  type TestFailure,
  type TestFileProblem,
} from '../lifecycle/policy-tests.js'

export type PolicyTestOutcome =
  /** No tests file (the default one is absent, or `tests_file: null`). */
  | { readonly kind: 'none' }
  | { readonly kind: 'unreadable'; readonly file: string; readonly error: string }
  | { readonly kind: 'invalid'; readonly file: string; readonly problems: readonly TestFileProblem[] }
  | { readonly kind: 'ran'; readonly file: string; readonly passed: number; readonly failures: readonly TestFailure[] }

/** Run the tests of `file` (default: the config's tests file) against `config`. */
export function runTestsFile(config: RuntimeConfig, file?: string): PolicyTestOutcome {
  const target = file !== undefined ? { path: file, explicit: true } : config.testsFile
  if (target === null || target === undefined) return { kind: 'none' }
  let text: string
  try {
    text = readFileSync(target.path, 'utf8')
  } catch (err) {
    if (!target.explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' }
    return { kind: 'unreadable', file: target.path, error: (err as NodeJS.ErrnoException).code ?? String(err) }
  }
  const parsed = parsePolicyTests(text)
  if (!parsed.ok) return { kind: 'invalid', file: target.path, problems: parsed.problems }
  const run = runPolicyTests(config, parsed.tests)
  return { kind: 'ran', file: target.path, passed: run.passed, failures: run.failures }
}

/**
 * The reload gate: null when the config's tests pass (or it has none), else one line naming the
 * first failing test (and how many more), which the policy state keeps for /healthz.
 */
export function vetPolicyTests(config: RuntimeConfig): string | null {
  const outcome = runTestsFile(config)
  switch (outcome.kind) {
    case 'none':
      return null
    case 'unreadable':
      return `policy tests: cannot read ${outcome.file} (${outcome.error})`
    case 'invalid': {
      const p = outcome.problems[0] as TestFileProblem
      const more = outcome.problems.length > 1 ? ` (and ${outcome.problems.length - 1} more problems)` : ''
      return `policy tests file invalid: ${formatTestLine(outcome.file, p.line, p.message)}${more}`
    }
    case 'ran': {
      if (outcome.failures.length === 0) return null
      const f = outcome.failures[0] as TestFailure
      const more = outcome.failures.length > 1 ? ` (and ${outcome.failures.length - 1} more)` : ''
      return `policy test failed: ${formatTestLine(outcome.file, f.test.line, f.message)}${more}`
    }
  }
}
