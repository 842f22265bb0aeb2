import { join } from 'node:path'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpsOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { pinnedUpstreamYaml, TOKEN, TOKEN_HASH } from '../helpers/config.js'
import type { DecisionRecord } from '../../src/telemetry/events.js'

/**
 * Agents propose, humans merge (SPEC §8), on the GitHub REST and GraphQL API: a loopback stand-in for
 * api.github.com answers 200 to anything; what reaches it is what the proxy let through.
 */
const GITHUB_TOKEN = 'ghs_proxy_only_token_for_the_stand_in'

/** api.github.com pinned to the loopback stand-in, verified with its CA. */
const apiUpstream = (api: { readonly port: number; readonly ca: { readonly certFile: string } }): string =>
  pinnedUpstreamYaml({ ports: [api.port], hosts: ['api.github.com'], caFile: api.ca.certFile })

/** curl's arguments for a request as agent ci-42 through the proxy, trusting its CA. */
const through = (pc: { readonly proxyUrl: string; readonly dir: string }): string[] => [
  '--proxy',
  pc.proxyUrl,
  '--proxy-user',
  `ci-42:${TOKEN}`,
  '--cacert',
  join(pc.dir, 'ca.pem'),
]

t.test('GitHub API writes under the github-agent preset', async (t) => {
  const api = await startHttpsOrigin(t, ['api.github.com'], (req, res, body) => {
    const answer = JSON.stringify({ ok: true, method: req.method, url: req.url, got: body.length })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
    res.end(answer)
  })
  const pc = await startPortcullis(
    t,
    `${apiUpstream(api)}groups:
  agents:
    allow:
      - github: { repos: [acme/widgets], preset: github-agent, token_env: PC_TEST_GITHUB_TOKEN }
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
`,
    {},
    { env: { PC_TEST_GITHUB_TOKEN: GITHUB_TOKEN } },
  )
  const base = `https://api.github.com:${api.port}`
  const call = (method: string, path: string, body?: unknown): ReturnType<typeof curl> =>
    curl([
      ...through(pc),
      '-X',
      method,
      '-H',
      'Accept: application/vnd.github+json',
      '-H',
      'Authorization: Bearer sandbox-has-no-real-token',
      ...(body === undefined ? [] : ['-H', 'Content-Type: application/json', '--data', JSON.stringify(body)]),
      `${base}${path}`,
    ])

  const allowed: ReadonlyArray<readonly [string, string, string, unknown]> = [
    [
      'a pull request from the agent’s branch',
      'POST',
      '/repos/acme/widgets/pulls',
      { head: 'agent/ci-42/fix-123', base: 'main', title: 'Fix' },
    ],
    ['a COMMENT review', 'POST', '/repos/acme/widgets/pulls/7/reviews', { event: 'COMMENT', body: 'looks odd' }],
    ['a comment on the pull request', 'POST', '/repos/acme/widgets/issues/7/comments', { body: 'done' }],
    [
      'a contents write to the agent’s branch',
      'PUT',
      '/repos/acme/widgets/contents/README.md',
      { message: 'm', content: 'eA==', branch: 'agent/ci-42/docs' },
    ],
    ['a GraphQL query', 'POST', '/graphql', { query: '{ viewer { login } }' }],
    ['a read', 'GET', '/repos/acme/widgets/pulls/7', undefined],
  ]
  for (const [behaviour, method, path, body] of allowed) {
    t.test(`allowed: ${behaviour}`, async (t) => {
      const before = api.seen.length
      const r = await call(method, path, body)
      t.equal(r.status, 200, `${r.status} ${r.body}`)
      t.equal(api.seen.length, before + 1, 'it reached the API')
      const seen = api.seen.at(-1)
      // GraphQL is not scoped to the rule's repos (a query can name any repository the token reads): no token.
      if (path === '/graphql')
        t.equal(seen?.headers.authorization, 'Bearer sandbox-has-no-real-token', 'GraphQL: the sandbox’s own, no token')
      else t.equal(seen?.headers.authorization, `Bearer ${GITHUB_TOKEN}`, 'with the proxy’s token, not the sandbox’s')
      if (body !== undefined) t.same(JSON.parse(seen?.body ?? 'null'), body, 'the body as sent')
    })
  }

  const refused: ReadonlyArray<readonly [string, string, string, unknown, string]> = [
    [
      'a pull request from main',
      'POST',
      '/repos/acme/widgets/pulls',
      { head: 'main', base: 'release', title: 'x' },
      'branch_not_allowed',
    ],
    ['merging its own pull request', 'PUT', '/repos/acme/widgets/pulls/7/merge', { merge_method: 'squash' }, 'merge'],
    ['an APPROVE review', 'POST', '/repos/acme/widgets/pulls/7/reviews', { event: 'APPROVE' }, 'approve'],
    ['a release', 'POST', '/repos/acme/widgets/releases', { tag_name: 'v9' }, 'release'],
    [
      'a contents write to main',
      'PUT',
      '/repos/acme/widgets/contents/README.md',
      { message: 'm', content: 'eA==', branch: 'main' },
      'branch_not_allowed',
    ],
    ['deleting the repository', 'DELETE', '/repos/acme/widgets', undefined, 'repo_delete'],
    [
      'a GraphQL mutation not listed',
      'POST',
      '/graphql',
      { query: 'mutation { mergePullRequest(input: {pullRequestId: "x"}) { clientMutationId } }' },
      'graphql_mutation',
    ],
  ]
  for (const [behaviour, method, path, body, detail] of refused) {
    t.test(`refused: ${behaviour}`, async (t) => {
      const before = api.seen.length
      const r = await call(method, path, body)
      t.equal(r.status, 403, r.body)
      t.equal(r.headers['x-portcullis-decision'], 'denied_repo_write')
      t.equal(api.seen.length, before, 'nothing reached the API')
      const json = JSON.parse(r.body) as { message: string; reason: string }
      t.equal(json.reason, 'denied_repo_write')
      t.match(json.message, /portcullis blocked/, 'GitHub clients print `message`')
      t.notMatch(r.body, GITHUB_TOKEN)
      const rec = await pc.waitForRecord<DecisionRecord>(
        (x) => x.event === 'decision' && x.id === r.headers['x-portcullis-request-id'],
      )
      t.match(rec, { reason: 'denied_repo_write', detail, rule: 'agents.allow[0]' })
    })
  }

  t.test('a method override is refused in every spelling, on reads too', async (t) => {
    const spellings: ReadonlyArray<readonly [string, string, readonly string[]]> = [
      ['POST', '/repos/acme/widgets/issues/7/comments', ['-H', 'X-HTTP-Method-Override: PUT']],
      ['POST', '/repos/acme/widgets/issues/7/comments', ['-H', 'X_HTTP_METHOD_OVERRIDE: PUT']],
      ['POST', '/repos/acme/widgets/issues/7/comments', ['-H', 'x_method_override: PUT']],
      ['GET', '/repos/acme/widgets/pulls/1/merge', ['-H', 'X-HTTP-Method-Override: PUT']],
      ['GET', '/repos/acme/widgets/pulls/1/merge', ['-H', 'X-Http-Method: PUT']],
      ['GET', '/repos/acme/widgets/pulls/1/merge?_method=PUT', []],
      ['GET', '/repos/acme/widgets/pulls/1/merge?a=1;%5F%4Dethod=PUT', []],
    ]
    for (const [method, path, extra] of spellings) {
      const before = api.seen.length
      const r = await curl([
        ...through(pc),
        '-X',
        method,
        ...extra,
        ...(method === 'POST' ? ['-H', 'Content-Type: application/json', '--data-raw', '{"body":"x"}'] : []),
        `${base}${path}`,
      ])
      t.equal(r.status, 403, `${method} ${path} ${extra.join(' ')}: ${r.body}`)
      t.equal(api.seen.length, before, 'nothing reached the API')
      const rec = await pc.waitForRecord<DecisionRecord>(
        (x) => x.event === 'decision' && x.id === r.headers['x-portcullis-request-id'],
      )
      t.match(rec, { reason: 'denied_repo_write', detail: 'method_override' })
    }
    t.equal((await call('GET', '/repos/acme/widgets/pulls/1?method=PUT')).status, 200, 'another parameter passes')
  })

  t.test('a refusal says what agents may do instead', async (t) => {
    const r = await call('PUT', '/repos/acme/widgets/pulls/7/merge', {})
    t.match(r.body, /merg/i)
    t.match(r.body, /agent\/ci-42\//)
  })

  t.test('the token never reaches a log line', async (t) => {
    t.notOk(pc.logLines().some((l) => l.includes(GITHUB_TOKEN)))
  })
})

t.test('GraphQL mutations: every rule opening GraphQL must list one, whatever the order', async (t) => {
  const api = await startHttpsOrigin(t, ['api.github.com'], (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"data":{}}')
  })
  const rules = (first: string, second: string): string => `${apiUpstream(api)}groups:
  agents:
    allow:
      - ${first}
      - ${second}
agents:
  - { id: ci-42, token: ${TOKEN_HASH}, groups: [agents] }
`
  const scratch =
    'github: { repos: [acme/scratch], access: write, api: { pulls: create, graphql_mutations: [mergePullRequest, createPullRequest] } }'
  const widgets =
    'github: { repos: [acme/widgets], access: write, api: { pulls: create, graphql_mutations: [createPullRequest] } }'
  for (const [name, config] of [
    ['scratch first', rules(scratch, widgets)],
    ['widgets first', rules(widgets, scratch)],
  ] as const) {
    await t.test(name, async (t) => {
      const pc = await startPortcullis(t, config)
      const graphql = (query: string): ReturnType<typeof curl> =>
        curl([
          ...through(pc),
          '-H',
          'Content-Type: application/json',
          '--data',
          JSON.stringify({ query }),
          `https://api.github.com:${api.port}/graphql`,
        ])
      const merge = await graphql('mutation { mergePullRequest(input: {pullRequestId: "PR_w7"}) { clientMutationId } }')
      t.equal(merge.status, 403, 'a mutation one rule lists and another does not is refused')
      t.equal(merge.headers['x-portcullis-decision'], 'denied_repo_write')
      const create = await graphql(
        'mutation { createPullRequest(input: {repositoryId: "R", baseRefName: "main", headRefName: "agent/ci-42/x", title: "t"}) { clientMutationId } }',
      )
      t.equal(create.status, 200, 'a mutation every rule lists passes')
    })
  }
})
