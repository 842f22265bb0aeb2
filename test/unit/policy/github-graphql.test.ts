import t from 'tap'
import {
  MAX_GRAPHQL_BATCH,
  MAX_GRAPHQL_DEPTH,
  MAX_GRAPHQL_TOKENS,
  decideGraphql,
  listMutationFields,
} from '../../../src/policy/github-graphql.js'

const ALLOWED = ['addComment', 'createPullRequest'] as const

function verdictOf(body: unknown, allowed: readonly string[] = ALLOWED): string {
  const d = decideGraphql(body, allowed)
  return d.verdict === 'allow' ? 'allow' : d.detail
}

const q = (query: string, operationName?: string): object => (operationName ? { query, operationName } : { query })

// [behaviour, body, 'allow' | detail]
const ROWS: ReadonlyArray<readonly [string, unknown, string]> = [
  ['a named query passes', q('query Me { viewer { login } }'), 'allow'],
  ['the anonymous shorthand query passes', q('{ viewer { login } }'), 'allow'],
  ['a subscription passes (it cannot write)', q('subscription { x }'), 'allow'],
  [
    'a listed mutation passes',
    q('mutation { addComment(input: {subjectId: "1", body: "b"}) { clientMutationId } }'),
    'allow',
  ],
  [
    'two listed mutations pass',
    q('mutation { addComment(input: {}) { a } createPullRequest(input: {}) { b } }'),
    'allow',
  ],
  [
    'an unlisted mutation is refused',
    q('mutation { mergePullRequest(input: {pullRequestId: "1"}) { clientMutationId } }'),
    'graphql_mutation',
  ],
  [
    'enabling auto-merge is refused',
    q('mutation { enablePullRequestAutoMerge(input: {}) { clientMutationId } }'),
    'graphql_mutation',
  ],
  [
    'a listed and an unlisted mutation together are refused',
    q('mutation { addComment(input: {}) { a } mergePullRequest(input: {}) { b } }'),
    'graphql_mutation',
  ],
  ['names compare case-sensitively', q('mutation { AddComment(input: {}) { a } }'), 'graphql_mutation'],
  [
    'an alias does not hide an unlisted mutation',
    q('mutation { addComment: mergePullRequest(input: {}) { a } }'),
    'graphql_mutation',
  ],
  ['an alias of a listed mutation passes', q('mutation { note: addComment(input: {}) { a } }'), 'allow'],
  [
    'a mutation inside a fragment spread is found',
    q('mutation { ...M } fragment M on Mutation { mergePullRequest(input: {}) { a } }'),
    'graphql_mutation',
  ],
  [
    'a mutation inside an inline fragment is found',
    q('mutation { ... on Mutation { mergePullRequest(input: {}) { a } } }'),
    'graphql_mutation',
  ],
  [
    'a mutation behind @include is found',
    q('mutation { ... @include(if: true) { mergePullRequest(input: {}) { a } } }'),
    'graphql_mutation',
  ],
  [
    'a fragment of listed mutations passes',
    q('mutation { ...M } fragment M on Mutation { addComment(input: {}) { a } }'),
    'allow',
  ],
  [
    'fields below a mutation are not mutations',
    q('mutation { addComment(input: {}) { commentEdge { node { mergePullRequest } } } }'),
    'allow',
  ],
  ['__typename at the top of a mutation passes', q('mutation { __typename }'), 'allow'],
  [
    'a mixed document is refused even when operationName picks the query',
    q('query Q { viewer { login } } mutation M { mergePullRequest(input: {}) { a } }', 'Q'),
    'graphql_mutation',
  ],
  [
    'a document of several listed operations passes',
    q('query Q { viewer { login } } mutation M { addComment(input: {}) { a } }', 'M'),
    'allow',
  ],
  ['a fragment spread of an unknown fragment is unparseable', q('mutation { ...Missing }'), 'unparseable_graphql'],
  [
    'cyclic fragments end (the server rejects them; nothing is missed)',
    q('mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { ...A mergePullRequest { a } }'),
    'graphql_mutation',
  ],
  ['a document that does not parse is unparseable', q('mutation { addComment('), 'unparseable_graphql'],
  [
    'a document the lexer rejects is unparseable',
    q('mutation { addComment(body: "unterminated) { a } }'),
    'unparseable_graphql',
  ],
  ['an empty document is unparseable', q(''), 'unparseable_graphql'],
  [
    'a type definition in the document is unparseable',
    q('type Mutation { x: Int } { viewer { login } }'),
    'unparseable_graphql',
  ],
  ['a body without query is unparseable', { operationName: 'x' }, 'unparseable_graphql'],
  ['a query that is not a string is unparseable', { query: ['{ viewer { login } }'] }, 'unparseable_graphql'],
  ['an inherited query (__proto__) is not read', JSON.parse('{"__proto__":{"query":"{ a }"}}'), 'unparseable_graphql'],
  ['a body that is a string is unparseable', 'mutation { x }', 'unparseable_graphql'],
  ['a batch of allowed requests passes', [q('{ viewer { login } }'), q('mutation { addComment { a } }')], 'allow'],
  [
    'a batch with one unlisted mutation is refused',
    [q('{ viewer { login } }'), q('mutation { deleteRef { a } }')],
    'graphql_mutation',
  ],
  ['an empty batch is unparseable', [], 'unparseable_graphql'],
  [
    'a batch over the bound is unparseable',
    Array.from({ length: MAX_GRAPHQL_BATCH + 1 }, () => q('{ a }')),
    'unparseable_graphql',
  ],
  ['a batch at the bound passes', Array.from({ length: MAX_GRAPHQL_BATCH }, () => q('{ a }')), 'allow'],
]

for (const [behaviour, body, expected] of ROWS) {
  t.test(behaviour, async (t) => {
    t.equal(verdictOf(body), expected)
  })
}

t.test('with no mutations listed, every mutation is refused and queries pass', async (t) => {
  t.equal(verdictOf(q('mutation { addComment { a } }'), []), 'graphql_mutation')
  t.equal(verdictOf(q('{ viewer { login } }'), []), 'allow')
})

t.test('the refusal names the mutation, not the alias', async (t) => {
  const d = decideGraphql(q('mutation { harmless: mergePullRequest { a } }'), ALLOWED)
  t.match(d, { verdict: 'deny', detail: 'graphql_mutation', message: /mergePullRequest/ })
  t.notMatch(d.verdict === 'deny' ? d.message : '', /harmless/)
})

t.test('nesting past the bound is refused without overflowing the stack', async (t) => {
  const nest = (n: number): string => `{${'a{'.repeat(n)}b${'}'.repeat(n + 1)}`
  t.equal(verdictOf(q(nest(MAX_GRAPHQL_DEPTH - 1))), 'allow')
  t.equal(verdictOf(q(nest(MAX_GRAPHQL_DEPTH))), 'unparseable_graphql')
  // Deep enough to overflow graphql's recursive parser if it were reached.
  t.equal(verdictOf(q(nest(5000))), 'unparseable_graphql')
})

t.test('a document over the token bound is refused', async (t) => {
  const fields = (n: number): string => `{ ${'a '.repeat(n)}}`
  t.equal(verdictOf(q(fields(MAX_GRAPHQL_TOKENS - 2))), 'allow')
  t.equal(verdictOf(q(fields(MAX_GRAPHQL_TOKENS))), 'unparseable_graphql')
})

t.test('comments do not hide a mutation', async (t) => {
  t.equal(verdictOf(q('# addComment\nmutation { # x\n mergePullRequest { a } }')), 'graphql_mutation')
})

t.test('listMutationFields returns the top-level names of every mutation in order', async (t) => {
  t.strictSame(
    listMutationFields('mutation A { x: a b { c } } mutation B { ...F } fragment F on Mutation { d ...F }'),
    {
      ok: true,
      fields: ['a', 'b', 'd'],
    },
  )
  t.strictSame(listMutationFields('{ a }'), { ok: true, fields: [] })
  t.strictSame(listMutationFields('mutation {'), { ok: false })
})
