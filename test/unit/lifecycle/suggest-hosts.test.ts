import t from 'tap'
import { foldableParent, foldPaths } from '../../../src/lifecycle/suggest-hosts.js'
import { looksLikeDropHost } from '../../../src/lifecycle/suggest-notes.js'

const PARENTS: ReadonlyArray<readonly [string, string | null]> = [
  ['a.cdn.example.com', 'cdn.example.com'],
  ['a.example.com', 'example.com'],
  ['example.com', null],
  ['localhost', null],
  ['a.example.co.uk', 'example.co.uk'],
  ['example.co.uk', null],
  ['10.0.0.1', null],
  ['2001:db8::1', null],
]
for (const [host, parent] of PARENTS)
  t.test(`the parent a wildcard for ${host} would use is ${String(parent)}`, async (t) => {
    t.equal(foldableParent(host), parent)
  })

const PATHS: ReadonlyArray<readonly [string, string[], string[]]> = [
  ['up to four paths stay as they are, sorted', ['/b', '/a', '/a'], ['/a', '/b']],
  ['five paths become their common directory', ['/x/y/1', '/x/y/2', '/x/y/3', '/x/y/4', '/x/z/5'], ['/x/**']],
  ['paths with nothing in common become /**', ['/a/1', '/b/2', '/c/3', '/d/4', '/e/5'], ['/**']],
  ['a path with a literal * is never used as a pattern', ['/a/*x'], ['/a/**']],
]
for (const [name, paths, expected] of PATHS)
  t.test(name, async (t) => {
    t.same(foldPaths(paths), expected)
  })

const DROPS: ReadonlyArray<readonly [string, boolean]> = [
  ['pastebin.com', true],
  ['paste.example.org', true],
  ['uploads.example.com', true],
  ['hooks.slack.com', true],
  ['webhook.site', true],
  ['transfer.sh', true],
  ['abc.ngrok.io', true],
  ['files.pythonhosted.org', false],
  ['registry.npmjs.org', false],
  ['github.com', false],
  ['10.0.0.1', false],
]
for (const [host, drop] of DROPS)
  t.test(`${host} ${drop ? 'looks' : 'does not look'} like a paste, upload or webhook service`, async (t) => {
    t.equal(looksLikeDropHost(host), drop)
  })
