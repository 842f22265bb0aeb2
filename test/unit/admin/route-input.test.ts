import t from 'tap'
import { repeatedKey } from '../../../src/admin/route-input.js'

t.test('repeatedKey finds the first key an object gives twice, with its path', async (t) => {
  t.equal(repeatedKey('{"agent":"ci","labels":{"a":"1","b":"2"}}'), null)
  t.same(repeatedKey('{"labels":{"task":"x","task":"y"}}'), ['labels', 'task'])
  t.same(repeatedKey('{"a":1,"a":2}'), ['a'])
  t.same(repeatedKey('{"labels":{"t":"1","\\u0074":"2"}}'), ['labels', 't'], 'escaped spellings are one key')
  t.equal(repeatedKey('{"x":[{"k":1},{"k":2}],"k":3}'), null, 'each object has its own keys')
  t.same(repeatedKey('{"x":[{"k":1,"k":2}]}'), ['x', '[]', 'k'])
  t.equal(repeatedKey('{"a":"\\"b\\"","b":"a,\\"b\\":"}'), null, 'quotes and commas inside strings are not structure')
  t.equal(repeatedKey('{"v":"a","w":"a"}'), null, 'equal values are not keys')
})
