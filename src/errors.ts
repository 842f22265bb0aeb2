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
