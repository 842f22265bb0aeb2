import t from 'tap'
import { classifyNpmPath, versionFromTarball } from '../../../src/packages/npm-path.js'
import { parseNpmName } from '../../../src/packages/npm-name.js'

t.test('package documents in every spelling of a scoped name', async (t) => {
  const cases: [string, string][] = [
    ['/lodash', 'lodash'],
    ['/JSONStream', 'JSONStream'],
    ['/@types%2fnode', '@types/node'],
    ['/@types%2Fnode', '@types/node'],
    ['/@types/node', '@types/node'],
    ['/%40types%2fnode', '@types/node'],
    ['/lodash?write=true', 'lodash'],
    ['/lodash.merge', 'lodash.merge'],
  ]
  for (const [path, name] of cases) t.same(classifyNpmPath(path), { kind: 'packument', name }, path)
})

t.test('tarballs: the version is read after the known base name, dashes included', async (t) => {
  const cases: [string, string, string][] = [
    ['/lodash/-/lodash-4.17.21.tgz', 'lodash', '4.17.21'],
    ['/@types/node/-/node-20.11.0.tgz', '@types/node', '20.11.0'],
    ['/@types%2fnode/-/node-20.11.0.tgz', '@types/node', '20.11.0'],
    ['/@types%2Fnode/-/node-20.11.0.tgz', '@types/node', '20.11.0'],
    ['/foo-bar/-/foo-bar-1.0.0-beta.1.tgz', 'foo-bar', '1.0.0-beta.1'],
    ['/foo-bar/-/foo-bar-1.0.0-rc-1.tgz', 'foo-bar', '1.0.0-rc-1'],
    ['/a/-/a-0.0.1-alpha.0.tgz', 'a', '0.0.1-alpha.0'],
    ['/@s/pkg-2/-/pkg-2-2.0.0.tgz', '@s/pkg-2', '2.0.0'],
  ]
  for (const [path, name, version] of cases) {
    t.match(classifyNpmPath(path), { kind: 'tarball', name, version }, path)
  }
})

t.test('version documents: an exact version, or a tag to resolve later', async (t) => {
  t.same(classifyNpmPath('/lodash/4.17.21'), {
    kind: 'version_doc',
    name: 'lodash',
    spec: '4.17.21',
    version: '4.17.21',
  })
  t.same(classifyNpmPath('/lodash/latest'), { kind: 'version_doc', name: 'lodash', spec: 'latest', version: null })
  t.same(classifyNpmPath('/@types/node/next'), {
    kind: 'version_doc',
    name: '@types/node',
    spec: 'next',
    version: null,
  })
  t.same(classifyNpmPath('/@types%2fnode/1.0.0'), {
    kind: 'version_doc',
    name: '@types/node',
    spec: '1.0.0',
    version: '1.0.0',
  })
  t.same(classifyNpmPath('/lodash/v1.0.0'), { kind: 'version_doc', name: 'lodash', spec: 'v1.0.0', version: null })
})

t.test('registry endpoints under /-/ and the root are other', async (t) => {
  for (const path of [
    '/',
    '/-/v1/search?text=react&size=20',
    '/-/npm/v1/security/advisories/bulk',
    '/-/npm/v1/security/audits/quick',
    '/-/whoami',
    '/-/ping?write=true',
  ]) {
    t.same(classifyNpmPath(path), { kind: 'other' }, path)
  }
})

t.test('a dist-tag listing names its package, in every spelling npm sends', async (t) => {
  t.same(classifyNpmPath('/-/package/lodash/dist-tags'), { kind: 'dist_tags', name: 'lodash' })
  t.same(classifyNpmPath('/-/package/@acme%2fwidget/dist-tags'), { kind: 'dist_tags', name: '@acme/widget' })
  t.same(classifyNpmPath('/-/package/@acme/widget/dist-tags/'), { kind: 'dist_tags', name: '@acme/widget' })
  t.same(classifyNpmPath('/-/package/lodash%252f/dist-tags'), { kind: 'unparseable', problem: 'bad_encoding' })
  t.same(classifyNpmPath('/-/package/lodash/1.0.0/dist-tags'), { kind: 'unparseable', problem: 'bad_name' })
  t.same(classifyNpmPath('/-/package/../dist-tags'), { kind: 'unparseable', problem: 'dot_segment' })
  t.same(classifyNpmPath('/-/package/lodash/dist-tags/latest'), { kind: 'dist_tags', name: 'lodash', tag: 'latest' })
  t.same(classifyNpmPath('/-/package/@acme/widget/dist-tags/next/'), {
    kind: 'dist_tags',
    name: '@acme/widget',
    tag: 'next',
  })
  t.same(classifyNpmPath('/-/package/lodash/dist-tags/%6catest'), { kind: 'unparseable', problem: 'bad_spec' })
})

t.test('paths built to confuse the parser are unparseable', async (t) => {
  const cases: [string, string][] = [
    ['/@types%252fnode', 'bad_encoding'],
    ['/%2e%2e/lodash', 'bad_encoding'],
    ['/lodash/%2e%2e/evil', 'bad_encoding'],
    ['/lod%61sh', 'bad_encoding'],
    ['/lodash%', 'bad_encoding'],
    ['/lodash/../evil', 'dot_segment'],
    ['/./lodash', 'dot_segment'],
    ['/lodash/', 'empty_segment'],
    ['//lodash', 'empty_segment'],
    ['/@types', 'bad_name'],
    ['/@types%2f', 'bad_name'],
    ['/@types%2fnode%2fextra', 'bad_name'],
    ['/_private', 'bad_name'],
    ['/.bin', 'bad_name'],
    ['/node_modules', 'bad_name'],
    ['/foo%40bar', 'bad_name'],
    ['/lodash/-/underscore-1.0.0.tgz', 'bad_tarball'],
    ['/lodash/-/lodash-4.17.tgz', 'bad_tarball'],
    ['/lodash/-/lodash-v4.17.21.tgz', 'bad_tarball'],
    ['/lodash/-/lodash-4.17.21.tar.gz', 'bad_tarball'],
    ['/lodash/-/lodash-4.17.21.tgz/x', 'unknown_shape'],
    ['/lodash/1.0.0/extra', 'unknown_shape'],
    ['/lodash/^1.0.0', 'bad_spec'],
    ['lodash', 'not_absolute'],
    ['http://registry.npmjs.org/lodash', 'not_absolute'],
  ]
  for (const [path, problem] of cases) t.same(classifyNpmPath(path), { kind: 'unparseable', problem }, path)
})

t.test('versionFromTarball rejects a non-canonical version', async (t) => {
  t.equal(versionFromTarball('x', 'x-1.0.0.tgz'), '1.0.0')
  t.equal(versionFromTarball('x', 'x-01.0.0.tgz'), null)
  t.equal(versionFromTarball('x', 'x-.tgz'), null)
  t.equal(versionFromTarball('x', 'xy-1.0.0.tgz'), null)
})

t.test('npm names follow the registry rules for old packages', async (t) => {
  const valid = ['lodash', 'JSONStream', '@types/node', 'a', "with'quote", '@s/x', '@_scope/x', 'x'.repeat(214)]
  for (const n of valid) t.equal(parseNpmName(n).ok, true, n)
  const invalid: [string, string][] = [
    ['', 'empty'],
    ['x'.repeat(215), 'too_long'],
    ['@s/.x', 'bad_start'],
    ['.x', 'bad_start'],
    ['_x', 'bad_start'],
    ['-x', 'bad_start'],
    ['a b', 'bad_char'],
    ['a/b', 'bad_char'],
    ['@s', 'bad_char'],
    ['@/x', 'empty'],
    ['@s/', 'empty'],
    ['@s/a/b', 'bad_char'],
    ['\ud800', 'bad_char'],
    ['favicon.ico', 'reserved'],
    ['NODE_MODULES', 'reserved'],
  ]
  for (const [n, problem] of invalid) t.same(parseNpmName(n), { ok: false, problem }, JSON.stringify(n))
})
