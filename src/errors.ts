/**
 * The whole error hierarchy. Expected outcomes (denials) are Decisions, never
 * errors; these are thrown only for start-up/operational faults and carry a
 * stable PC_ERR_* code the CLI prints.
 */
import type { ErrorCode } from './codes.js'

export type { ErrorCode } from './codes.js'

export class PortcullisError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PortcullisError'
    this.code = code
  }
}

/**
 * The admin API answered a CLI request with an error status (PC_ERR_ADMIN_REQUEST): the status, and
 * the answer's `error` word and `message` when it had them, for a verb to tell a refused request
 * from a failed one.
 */
export class AdminRequestError extends PortcullisError {
  readonly status: number
  readonly answer: { readonly error: string; readonly message: string } | null
  constructor(message: string, status: number, answer: { readonly error: string; readonly message: string } | null) {
    super('PC_ERR_ADMIN_REQUEST', message)
    this.name = 'AdminRequestError'
    this.status = status
    this.answer = answer
  }
}

/** One problem found in a config file, located precisely enough to fix it. */
export interface ConfigIssue {
  readonly file: string
  readonly line: number
  readonly col: number
  /** Dotted key path, e.g. `groups.builders.allow[2].host`. */
  readonly path: string
  readonly message: string
}

export class ConfigError extends PortcullisError {
  readonly issues: readonly ConfigIssue[]
  constructor(issues: readonly ConfigIssue[]) {
    super('PC_ERR_CONFIG_INVALID', issues.map(formatConfigIssue).join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

export function formatConfigIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`
}
