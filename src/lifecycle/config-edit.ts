/**
 * Adding rules to a config file without disturbing it: the yaml Document API finds where an agent's
 * or a group's `allow` list is (node ranges in the original text), and the new items are spliced
 * into the text there, so every other byte (comments, alignment, blank lines, key order) stays as
 * the author wrote it and a diff shows only the additions. PURE.
 */
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml'
import { ruleItem, type SuggestedRule } from './rule-yaml.js'
import { PortcullisError } from '../errors.js'

export interface RuleInsert {
  readonly rule: SuggestedRule
  /** Comment lines written above the rule (counts, first/last seen, warnings). */
  readonly comment: readonly string[]
}

export interface TargetEdit {
  readonly kind: 'agent' | 'group'
  readonly name: string
  readonly rules: readonly RuleInsert[]
}

interface Splice {
  readonly start: number
  readonly end: number
  readonly text: string
}

/** The text with each target's rules appended to its `allow` list (created when missing). Throws when a target is not there. */
export function insertRules(original: string, edits: readonly TargetEdit[]): string {
  // Every splice below ends at a line end: a file without a final newline gets one first, or a rule
  // appended after its last line would join that line.
  const text = original === '' || original.endsWith('\n') ? original : `${original}\n`
  const doc = parseDocument(text, { keepSourceTokens: false })
  if (doc.errors.length > 0) throw new Error(`the config is not valid YAML: ${doc.errors[0]?.message ?? ''}`)
  // `agents: [ {…}, {…} ]`: first written as a block list of the same items, each of which then takes
  // its rules as any agent written `- { … }` does.
  const unflowed = edits.some((e) => e.kind === 'agent' && e.rules.length > 0) ? blockAgents(doc, text) : null
  if (unflowed !== null) return insertRules(unflowed, edits)
  const splices = edits.filter((e) => e.rules.length > 0).map((e) => spliceFor(doc, text, e))
  let out = text
  for (const s of [...splices].sort((a, b) => b.start - a.start))
    out = out.slice(0, s.start) + s.text + out.slice(s.end)
  return out
}

function spliceFor(doc: Document, text: string, edit: TargetEdit): Splice {
  const parent = edit.kind === 'agent' ? agentNode(doc, edit.name) : groupNode(doc, edit.name)
  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === 'allow') as Pair<Node, unknown> | undefined
  const list = pair?.value
  if (pair !== undefined && isSeq(list) && !list.flow && list.items.length > 0) {
    const first = list.items[0] as Node
    const last = list.items[list.items.length - 1] as Node
    const indent = dashColumn(text, rangeOf(first)[0])
    const at = afterLine(text, rangeOf(last)[1])
    return {
      start: at,
      end: at,
      text: `${items(edit, indent)}\n`,
    }
  }
  if (pair !== undefined && isSeq(list)) {
    // `allow: []` or `allow: [ … ]`: rewritten as a block list holding what it held.
    const keyCol = column(text, rangeOf(pair.key as Node)[0])
    const [s, e] = rangeOf(list)
    const kept = list.items.map((it) => `${' '.repeat(keyCol + 2)}- ${text.slice(...rangeOf(it as Node)).trim()}`)
    return replaceToLineEnd(text, s, e, [...kept, items(edit, keyCol + 2)].join('\n'))
  }
  if (pair !== undefined) throw new PortcullisError('PC_ERR_USAGE', `${edit.kind} '${edit.name}': allow is not a list`)
  if (!parent.flow) {
    const keyCol = column(text, rangeOf(parent.items[0]?.key as Node)[0])
    const at = afterLine(text, rangeOf(parent)[1])
    return { start: at, end: at, text: `${' '.repeat(keyCol)}allow:\n${items(edit, keyCol + 2)}\n` }
  }
  return flowMapToBlock(text, parent, edit)
}

/** `- { id: ci, groups: [g] }` → a block mapping with the same pairs, then `allow:` and the rules. */
function flowMapToBlock(text: string, map: YAMLMap, edit: TargetEdit): Splice {
  const [s, e] = rangeOf(map)
  const col = column(text, s)
  const pairs = map.items.map((p) => {
    const key = text.slice(...rangeOf(p.key as Node))
    return p.value === null ? `${key}:` : `${key}: ${text.slice(...rangeOf(p.value as Node))}`
  })
  const pad = ' '.repeat(col)
  const [head, ...rest] = pairs
  const block = [head ?? '', ...rest.map((l) => `${pad}${l}`), `${pad}allow:`, items(edit, col + 2)]
  const lineEnd = afterLine(text, e)
  const trailing = text.slice(e, lineEnd).trim()
  const first = trailing ? `${block[0]}  ${trailing}` : block[0]
  return { start: s, end: lineEnd, text: `${[first, ...block.slice(1)].join('\n')}\n` }
}

/** Replace [start, end) and the rest of its line; a comment after it stays on the key's line. */
function replaceToLineEnd(text: string, start: number, end: number, block: string): Splice {
  let s = start
  while (s > 0 && text[s - 1] === ' ') s--
  const lineEnd = afterLine(text, end)
  const trailing = text.slice(end, lineEnd).trim()
  return { start: s, end: lineEnd, text: `${trailing ? ` ${trailing}` : ''}\n${block}\n` }
}

function items(edit: TargetEdit, indent: number): string {
  return edit.rules.map((r) => ruleItem(r.rule, indent, r.comment)).join('\n')
}

/** The text with an inline agents list (`agents: [ … ]`) rewritten as a block list of the same items; null when it is not inline. */
function blockAgents(doc: Document, text: string): string | null {
  const agents = doc.get('agents', true)
  if (!isSeq(agents) || !agents.flow || !isMap(doc.contents)) return null
  const pair = doc.contents.items.find((p) => isScalar(p.key) && p.key.value === 'agents')
  if (pair === undefined) return null
  const keyCol = column(text, rangeOf(pair.key as Node)[0])
  const [s, e] = rangeOf(agents)
  const kept = agents.items.map((it) => `${' '.repeat(keyCol + 2)}- ${text.slice(...rangeOf(it as Node)).trim()}`)
  const splice = replaceToLineEnd(text, s, e, kept.join('\n'))
  return text.slice(0, splice.start) + splice.text + text.slice(splice.end)
}

function agentNode(doc: Document, id: string): YAMLMap {
  const agents = doc.get('agents', true)
  if (!isSeq(agents)) throw new Error(`agent '${id}' is not in the config (no agents list)`)
  const node = agents.items.find((a) => isMap(a) && a.get('id') === id)
  if (!isMap(node)) throw new Error(`agent '${id}' is not in the config`)
  return node
}

function groupNode(doc: Document, name: string): YAMLMap {
  const groups = doc.get('groups', true)
  const node = isMap(groups) ? groups.get(name, true) : undefined
  if (!isMap(node)) throw new Error(`group '${name}' is not in the config`)
  if (groups !== undefined && isMap(groups) && groups.flow)
    throw new PortcullisError(
      'PC_ERR_USAGE',
      'the groups mapping is written inline ({…}); write it as a block mapping to add rules',
    )
  return node
}

function rangeOf(node: Node | null | undefined): [number, number] {
  const r = node?.range
  if (!r) throw new Error('a config node has no position')
  return [r[0], r[1]]
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1
}

function column(text: string, offset: number): number {
  return offset - lineStart(text, offset)
}

/** The column of the `-` that starts the list item whose content begins at `offset`. */
function dashColumn(text: string, offset: number): number {
  const prefix = text.slice(lineStart(text, offset), offset)
  const dash = prefix.lastIndexOf('-')
  return dash >= 0 ? dash : Math.max(0, prefix.length - 2)
}

/** The offset just past the end of the line on which a node ending at `end` ends. */
function afterLine(text: string, end: number): number {
  if (end > 0 && text[end - 1] === '\n') return end
  const nl = text.indexOf('\n', end)
  return nl < 0 ? text.length : nl + 1
}
