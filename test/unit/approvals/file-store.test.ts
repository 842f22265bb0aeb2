import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createFileApprovalStore } from '../../../src/approvals/file-store.js'
import { PortcullisError } from '../../../src/errors.js'

t.test('an approvals file that is not YAML is PC_ERR_CONFIG_UNREADABLE, naming the file', async (t) => {
  const file = join(t.testdir(), 'approvals.yaml')
  writeFileSync(file, 'approvals: [ {id: 1, bogus')
  const err = await createFileApprovalStore(file).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof PortcullisError)
  t.match(err, {
    code: 'PC_ERR_CONFIG_UNREADABLE',
    message: new RegExp(`approvals\\.file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not YAML`),
  })
})

t.test('a missing approvals file is an empty list', async (t) => {
  const store = await createFileApprovalStore(join(t.testdir(), 'none.yaml'))
  t.same(store.current(), [])
})
