/**
 * The rules `suggest` proposes, as the config spells them (SPEC §3), and their YAML text in the
 * config's own style: one block mapping per rule, lists and nested mappings inline
 * (`methods: [GET, HEAD]`, `github: { repos: [acme/widgets], access: read }`). PURE.
 */
import { stringify } from 'yaml'

export interface HostRuleShape {
  readonly host: string
  readonly ports?: readonly number[]
  readonly methods?: readonly string[]
  readonly paths?: readonly string[]
}

export type SuggestedRule =
  | HostRuleShape
  | { readonly preset: string }
  | { readonly github: { readonly repos: readonly string[]; readonly access: 'read' | 'write' } }
  | {
      readonly git: { readonly host: string; readonly repos: readonly string[]; readonly access: 'read' | 'write' }
    }

type Value = string | number | boolean | readonly Value[] | { readonly [k: string]: Value }

/** A scalar as YAML writes it, quoted where a flow collection would misread it. */
function scalar(v: string | number | boolean, inFlow: boolean): string {
  const plain = stringify(v, { lineWidth: 0 }).trimEnd()
  if (typeof v !== 'string' || !inFlow || /^["']/.test(plain)) return plain
  return /[,[\]{}]/.test(plain) ? JSON.stringify(v) : plain
}

function flow(v: Value): string {
  if (Array.isArray(v)) return `[${(v as readonly Value[]).map(flow).join(', ')}]`
  if (typeof v === 'object') {
    const pairs = Object.entries(v as { readonly [k: string]: Value }).map(([k, x]) => `${k}: ${flow(x)}`)
    return `{ ${pairs.join(', ')} }`
  }
  return scalar(v as string | number | boolean, true)
}

/** The rule as the lines of a block mapping (no indentation, no leading `- `). */
export function ruleLines(rule: SuggestedRule): string[] {
  return Object.entries(rule as unknown as Record<string, Value>).map(([k, v]) =>
    Array.isArray(v) || typeof v === 'object' ? `${k}: ${flow(v)}` : `${k}: ${scalar(v, false)}`,
  )
}

/** The rule as one list item at `indent` (the column of its `-`), with `comment` lines above it. */
export function ruleItem(rule: SuggestedRule, indent: number, comment: readonly string[] = []): string {
  const pad = ' '.repeat(indent)
  const lines = ruleLines(rule)
  return [
    ...comment.map((c) => `${pad}# ${c}`),
    `${pad}- ${lines[0] ?? '{}'}`,
    ...lines.slice(1).map((l) => `${pad}  ${l}`),
  ].join('\n')
}

/** The rule on one line, for summaries: `host: "*.example.com", ports: [8443]`. */
export function ruleInline(rule: SuggestedRule): string {
  return ruleLines(rule).join(', ')
}

export function isHostRule(rule: SuggestedRule): rule is HostRuleShape {
  return 'host' in rule
}
