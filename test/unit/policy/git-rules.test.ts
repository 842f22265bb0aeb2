import t from 'tap'
import {
  checkRepo,
  expandGitRepos,
  expandGithubRepos,
  isPushPath,
  repoCasePath,
} from '../../../src/policy/git-rules.js'

t.test('checkRepo', async (t) => {
  const CASES: ReadonlyArray<readonly [string, boolean, boolean, string]> = [
    ['acme/widgets', true, true, 'owner/name on GitHub'],
    ['acme/*', true, true, 'a glob within a part'],
    ['acme', true, false, 'a GitHub repo needs an owner'],
    ['acme/sub/widgets', true, false, 'GitHub has no nested groups'],
    ['acme/sub/widgets', false, true, 'other forges nest groups'],
    ['acme/**', false, false, '** is not a repo glob'],
    ['acme/..', false, false, 'no dot segments'],
    ['acme/.', true, false, 'no dot segments on GitHub either'],
    ['acme/wid gets', true, false, 'no spaces'],
  ]
  for (const [repo, github, ok, behaviour] of CASES)
    t.equal(checkRepo(repo, github) === null, ok, `${behaviour}: '${repo}'`)
  t.match(checkRepo('acme', true), /is not 'owner\/name'/)
  t.match(checkRepo('a/**', false), /is not a repository path/)
})

t.test('expandGitRepos: a read opens fetch only, with and without .git', async (t) => {
  t.strictSame(expandGitRepos('git.example.org', ['g/r'], 'read'), [
    {
      host: 'git.example.org',
      methods: ['GET', 'HEAD'],
      paths: ['/g/r/info/refs?service=git-upload-pack', '/g/r.git/info/refs?service=git-upload-pack'],
      part: 'smart_http',
    },
    {
      host: 'git.example.org',
      methods: ['POST'],
      paths: ['/g/r/git-upload-pack', '/g/r.git/git-upload-pack'],
      part: 'smart_http',
    },
  ])
})

t.test('expandGitRepos: a write opens push too', async (t) => {
  const [refs, rpc] = expandGitRepos('h', ['g/r'], 'write')
  t.ok(refs?.paths.includes('/g/r/info/refs?service=git-receive-pack'))
  t.ok(rpc?.paths.includes('/g/r.git/git-receive-pack'))
  t.equal(rpc?.paths.length, 4, 'two services, with and without .git')
})

t.test('expandGithubRepos: smart HTTP plus downloads and the REST API for the same repos', async (t) => {
  const read = expandGithubRepos(['acme/w'], 'read')
  t.strictSame(
    read.map((r) => [r.host, r.part, r.methods]),
    [
      ['github.com', 'smart_http', ['GET', 'HEAD']],
      ['github.com', 'smart_http', ['POST']],
      ['github.com', 'download', ['GET', 'HEAD']],
      ['codeload.github.com', 'download', ['GET', 'HEAD']],
      ['raw.githubusercontent.com', 'download', ['GET', 'HEAD']],
      ['api.github.com', 'api', ['GET', 'HEAD']],
    ],
  )
  t.strictSame(read[2]?.paths, ['/acme/w/archive/**'])
  t.strictSame(read[5]?.paths, ['/repos/acme/w', '/repos/acme/w/**'])
  const write = expandGithubRepos(['acme/w'], 'write')
  t.strictSame(
    write.slice(read.length).map((r) => [r.host, r.part, r.methods, r.paths]),
    [
      ['api.github.com', 'api', ['POST', 'PUT', 'PATCH', 'DELETE'], ['/repos/acme/w', '/repos/acme/w/**']],
      ['api.github.com', 'graphql', ['POST'], ['/graphql']],
    ],
    'a write adds the API methods that change things, and GraphQL',
  )
})

t.test('isPushPath', async (t) => {
  const CASES: ReadonlyArray<readonly [string, string, boolean, string]> = [
    ['/acme/w.git/git-receive-pack', '', true, 'the push RPC'],
    ['/acme/w/info/refs', 'service=git-receive-pack', true, 'the push advertisement'],
    ['/acme/w/info/refs', 'x=1&service=git-receive-pack&y=2', true, 'among other parameters'],
    ['/acme/w/info/refs', 'service=git-upload-pack', false, 'a fetch advertisement'],
    ['/acme/w/info/refs', 'service=git-receive-packx', false, 'a longer service name'],
    ['/acme/w/git-upload-pack', '', false, 'the fetch RPC'],
    ['/acme/w/git-receive-pack/x', '', false, 'a path below the RPC'],
  ]
  for (const [path, query, push, behaviour] of CASES) t.equal(isPushPath(path, query), push, behaviour)
})

t.test('repoCasePath folds owner and repo, not the service suffix; rules are expanded lower-case', async (t) => {
  t.equal(repoCasePath('/Acme/Widgets.git/info/refs'), '/acme/widgets.git/info/refs')
  t.equal(repoCasePath('/repos/acme/Secret/contents/Key'), '/repos/acme/secret/contents/key')
  t.equal(repoCasePath('/acme/W/GIT-RECEIVE-PACK'), '/acme/w/GIT-RECEIVE-PACK', 'a suffix the push gate would not know')
  t.equal(repoCasePath('/acme/W/Info/Refs'), '/acme/w/Info/Refs')
  const plain = '/acme/w/git-upload-pack'
  t.equal(repoCasePath(plain), plain)
  t.equal(repoCasePath('/A/%E2%84%AA'), '/a/%e2%84%aa', 'escapes fold with the rest; repo names never hold them')
  t.strictSame(expandGitRepos('h', ['G/R'], 'read')[1]?.paths, ['/g/r/git-upload-pack', '/g/r.git/git-upload-pack'])
  t.strictSame(expandGithubRepos(['Acme/W'], 'read')[5]?.paths, ['/repos/acme/w', '/repos/acme/w/**'])
})
