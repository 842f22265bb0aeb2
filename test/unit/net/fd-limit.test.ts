import t from 'tap'
import { parseNofile } from '../../../src/net/fd-limit.js'

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`

t.test('the soft and hard open-file limits are read from /proc/self/limits', async (t) => {
  t.same(parseNofile(LIMITS), { soft: 1024, hard: 524288 })
})

t.test('an unlimited or missing limit is unknown (null), not a number', async (t) => {
  t.same(parseNofile(LIMITS.replace('524288  ', 'unlimited')), { soft: 1024, hard: null })
  t.same(parseNofile('Max cpu time  unlimited  unlimited  seconds\n'), { soft: null, hard: null })
})
