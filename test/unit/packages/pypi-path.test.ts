import t from 'tap'
import { classifyPypiPath, refusedAlternative } from '../../../src/packages/pypi-path.js'
import { packageRules } from '../../helpers/package-rules.js'

// `a-1x-2x-1.0.tar.gz` reads as `a-1x-2x` 1.0, `a` "1x-2x-1.0" or `a-1x` "2x-1.0".
const file = classifyPypiPath('/packages/aa/bb/a-1x-2x-1.0.tar.gz')

t.test('a denied reading is named before one that is only off the allow list', async (t) => {
  const rules = packageRules('pypi', { allow: ['a-1x-2x'], deny: ['a-1x'] })
  t.match(refusedAlternative(file, rules), { project: 'a-1x', detail: 'denied' })
})

t.test('off the allow list only: the first such reading', async (t) => {
  const rules = packageRules('pypi', { allow: ['a-1x-2x'] })
  t.match(refusedAlternative(file, rules), { project: 'a', detail: 'not_allowed' })
  t.equal(refusedAlternative(file, packageRules('pypi', { allow: ['a', 'a-1x', 'a-1x-2x'] })), null)
})
