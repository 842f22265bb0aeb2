/**
 * GitHub GraphQL writes (SPEC §8): `POST /graphql` bodies are parsed with the
 * reference implementation (the `graphql` package, v16) and every field at the
 * top of every mutation operation must be listed in `api.graphql_mutations`.
 * Queries and subscriptions pass: neither can change anything (and GitHub
 * serves no subscriptions over HTTP). PURE.
 *
 * Choices, each fail-closed:
 * - All mutation operations in the document are checked, whatever
 *   `operationName` says: which operation a server runs is its business, and a
 *   document that carries an unlisted mutation is refused whole.
 * - Aliases do not hide a field (`x: mergePullRequest` is `mergePullRequest`);
 *   inline fragments and fragment spreads at the top of a mutation are
 *   expanded (each fragment once per operation, so cycles and fan-out cost
 *   nothing); a spread of an unknown fragment is unparseable.
 * - `__typename` is the only meta-field allowed among mutation fields.
 * - A document that does not parse, carries non-executable definitions
 *   (type definitions), nests deeper than MAX_GRAPHQL_DEPTH or has more than
 *   MAX_GRAPHQL_TOKENS tokens is refused: `unparseable_graphql`. The nesting
 *   check runs on the lexer first, because the parser recurses per level and a
 *   few thousand `{` would overflow the stack.
 * - A batch (JSON array of requests) is decided element by element, at most
 *   MAX_GRAPHQL_BATCH of them; any refusal refuses the batch.
 */
import { Kind, Lexer, parse, Source, TokenKind, type DocumentNode, type SelectionSetNode } from 'graphql'
import type { GithubApiDecision } from './github-api.js'

/** More tokens than any real client's query (gh's largest are a few hundred); parse work is linear in them. */
export const MAX_GRAPHQL_TOKENS = 20_000
/** Brace, bracket and parenthesis nesting; GitHub's own queries stay under 20. */
export const MAX_GRAPHQL_DEPTH = 64
export const MAX_GRAPHQL_BATCH = 16
const MAX_GRAPHQL_COMMENTS = 1_000
const MAX_NAME_IN_MESSAGE = 64

export type MutationFields = { readonly ok: true; readonly fields: readonly string[] } | { readonly ok: false }

/**
 * Decide a parsed JSON body sent to `POST /graphql`: `{ query, operationName?, variables? }`
 * or an array of them. `allowed` holds mutation field names, compared exactly.
 */
export function decideGraphql(body: unknown, allowed: readonly string[]): GithubApiDecision {
  const requests = Array.isArray(body) ? body : [body]
  if (requests.length === 0 || requests.length > MAX_GRAPHQL_BATCH) return unparseable()
  for (const request of requests) {
    const query = ownValue(request, 'query')
    if (typeof query !== 'string') return unparseable()
    const found = listMutationFields(query)
    if (!found.ok) return unparseable()
    const refused = found.fields.find((f) => f !== '__typename' && !allowed.includes(f))
    if (refused !== undefined) return deniedMutation(refused, allowed)
  }
  return { verdict: 'allow', action: 'graphql' }
}

/** The names (not aliases) of the fields at the top of every mutation operation in a document. */
export function listMutationFields(query: string): MutationFields {
  if (!withinBounds(query)) return { ok: false }
  let doc: DocumentNode
  try {
    doc = parse(query, {
      noLocation: true,
      maxLexicalTokens: MAX_GRAPHQL_TOKENS,
      maxComments: MAX_GRAPHQL_COMMENTS,
    })
  } catch {
    return { ok: false }
  }
  const fragments = new Map<string, SelectionSetNode>()
  for (const def of doc.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def.selectionSet)
    else if (def.kind !== Kind.OPERATION_DEFINITION) return { ok: false }
  }
  const fields: string[] = []
  for (const def of doc.definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION || def.operation !== 'mutation') continue
    if (!collectFields(def.selectionSet, fragments, new Set(), fields)) return { ok: false }
  }
  return { ok: true, fields }
}

/** Top-level field names of a selection set, through fragments; false on a spread of an unknown fragment. */
function collectFields(
  set: SelectionSetNode,
  fragments: ReadonlyMap<string, SelectionSetNode>,
  expanded: Set<string>,
  out: string[],
): boolean {
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      out.push(sel.name.value)
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      if (!collectFields(sel.selectionSet, fragments, expanded, out)) return false
    } else {
      const name = sel.name.value
      const target = fragments.get(name)
      if (target === undefined) return false
      // Once per operation: the same fragment adds the same names, and a cycle ends here.
      if (expanded.has(name)) continue
      expanded.add(name)
      if (!collectFields(target, fragments, expanded, out)) return false
    }
  }
  return true
}

/** Token count and nesting, measured by graphql's own lexer (iterative) before the recursive parser runs. */
function withinBounds(query: string): boolean {
  try {
    const lexer = new Lexer(new Source(query))
    let depth = 0
    for (let count = 0; count <= MAX_GRAPHQL_TOKENS; count++) {
      const kind = lexer.advance().kind
      if (kind === TokenKind.EOF) return true
      if (kind === TokenKind.BRACE_L || kind === TokenKind.BRACKET_L || kind === TokenKind.PAREN_L) depth++
      else if (kind === TokenKind.BRACE_R || kind === TokenKind.BRACKET_R || kind === TokenKind.PAREN_R) depth--
      if (depth > MAX_GRAPHQL_DEPTH) return false
    }
    return false
  } catch {
    return false
  }
}

function ownValue(obj: unknown, key: string): unknown {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return undefined
  return Object.hasOwn(obj, key) ? (obj as Record<string, unknown>)[key] : undefined
}

function unparseable(): GithubApiDecision {
  return {
    verdict: 'deny',
    action: 'graphql',
    detail: 'unparseable_graphql',
    message:
      `The GraphQL request could not be checked: send one JSON object with a "query" that parses, ` +
      `at most ${MAX_GRAPHQL_TOKENS} tokens and ${MAX_GRAPHQL_DEPTH} levels deep.`,
  }
}

function deniedMutation(field: string, allowed: readonly string[]): GithubApiDecision {
  // A GraphQL Name is [_A-Za-z][_0-9A-Za-z]*, so it is safe to quote; only its length needs a bound.
  const name = field.length > MAX_NAME_IN_MESSAGE ? `${field.slice(0, MAX_NAME_IN_MESSAGE)}…` : field
  const list = allowed.length === 0 ? 'none are allowed' : `allowed: ${allowed.join(', ')}`
  return {
    verdict: 'deny',
    action: 'graphql',
    detail: 'graphql_mutation',
    message: `GraphQL mutation ${name} is not allowed for this agent (${list}); queries pass.`,
  }
}
