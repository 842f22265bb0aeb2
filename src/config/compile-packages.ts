/**
 * A registry rule's `packages` block (SPEC §11) → its PackageControl: the names, scopes and
 * name@version entries, the deny file (read at load, reloaded with the config), min_age and its
 * exemptions, compiled once. Every bad entry is reported where it is: a list entry at its key path, a
 * deny-file line at the file's own line and column.
 */
import type { PackageControl } from '../policy/compiled.js'
import { compilePackageRules, type Ecosystem } from '../packages/rules.js'
import { parseDurationMs } from './duration.js'
import type { Issues, KeyPath } from './issues.js'
import type { RawPackages } from './schema.js'

/** Deny files as read at load: path (as written in the config) → text, or null when it could not be read. */
export type DenyFiles = ReadonlyMap<string, string | null>

export function compilePackageControl(
  block: RawPackages,
  ecosystem: Ecosystem,
  indexHost: string | null,
  path: KeyPath,
  issues: Issues,
  files: DenyFiles,
): PackageControl | null {
  let denyFileLines: string[] = []
  if (block.deny_file !== undefined) {
    const text = files.get(block.deny_file)
    if (text === undefined || text === null) {
      issues.add([...path, 'deny_file'], `cannot read deny_file ${block.deny_file}`)
      return null
    }
    denyFileLines = text.split(/\r?\n/)
  }
  const compiled = compilePackageRules(ecosystem, {
    deny: block.deny,
    allow: block.allow,
    denyFileLines,
    minAgeMs: block.min_age === undefined ? null : parseDurationMs(block.min_age),
    minAgeExempt: block.min_age_exempt,
  })
  if (!compiled.ok) {
    for (const e of compiled.errors) {
      const where: KeyPath =
        e.list === 'deny_file'
          ? [...path, 'deny_file']
          : e.list === 'min_age'
            ? [...path, 'min_age']
            : [...path, e.list, e.index]
      const at = e.list === 'deny_file' ? `${block.deny_file ?? ''}:${e.index + 1}:${e.column}: ` : ''
      issues.add(where, `${at}'${e.entry}' is not a package entry for ${ecosystem} (${e.problem.replaceAll('_', ' ')})`)
    }
    return null
  }
  return Object.freeze({ ecosystem, rules: compiled.rules, indexHost })
}

/** Every deny_file a raw config names (to read them before compiling). */
export function denyFilesOf(raw: unknown): string[] {
  const out = new Set<string>()
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'deny_file' && typeof x === 'string') out.add(x)
        else walk(x)
      }
  }
  walk(raw)
  return [...out]
}
