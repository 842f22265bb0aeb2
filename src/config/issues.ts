/**
 * Collecting config problems with their place in the file. Every problem in a
 * file is reported at once (not just the first), each as file:line:col plus
 * the dotted key path, so an operator can fix a whole edit in one pass.
 */
import { ConfigError, type ConfigIssue } from '../errors.js'

export type KeyPath = readonly (string | number)[]

/** Where a config came from, and how to find a key in it. */
export interface ConfigSource {
  readonly file: string
  /**
   * 1-based line/col of the value at `path` (of its key when `atKey`); the
   * nearest existing ancestor when the path is absent (a missing key is
   * reported where its parent object is).
   */
  locate(path: KeyPath, atKey?: boolean): { line: number; col: number }
}

/** `groups.builders.allow[2].host` */
export function formatKeyPath(path: KeyPath): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? part : `.${part}`
  }
  return out
}

export class Issues {
  readonly list: ConfigIssue[] = []
  constructor(private readonly source: ConfigSource) {}

  add(path: KeyPath, message: string, atKey = false): void {
    const { line, col } = this.source.locate(path, atKey)
    this.list.push({ file: this.source.file, line, col, path: formatKeyPath(path), message })
  }

  /** Throw everything collected so far, in file order. */
  throwIfAny(): void {
    if (this.list.length === 0) return
    const sorted = [...this.list].sort((a, b) => a.line - b.line || a.col - b.col)
    throw new ConfigError(sorted)
  }
}

/** A source without positions (configs built in code, e.g. tests and benches). */
export function createPlainSource(file: string): ConfigSource {
  return { file, locate: () => ({ line: 1, col: 1 }) }
}
