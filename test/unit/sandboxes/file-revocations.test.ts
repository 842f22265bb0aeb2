import t from 'tap'
import { createFileRevocationStore } from '../../../src/sandboxes/file-revocations.js'
import { PortcullisError } from '../../../src/errors.js'

t.test('a revocation the file cannot hold still refuses the credential here, and says it was not saved', async (t) => {
  // /proc takes no new files: the write fails as a full disk or a read-only mount would.
  const store = await createFileRevocationStore('/proc/portcullis-test-sandbox-revocations.yaml')
  let changes = 0
  store.onChange(() => changes++)
  const now = Date.now()
  const revocation = {
    id: '01JDTESTSANDBOXREVOKED0000',
    agent: 'ci',
    revoked_at: new Date(now).toISOString(),
    expires_at: new Date(now + 3600_000).toISOString(),
    revoked_by: 'admin',
    reason: 'leaked',
  }
  const failed = await store.add(revocation).then(
    () => null,
    (err: unknown) => err,
  )
  t.ok(failed instanceof PortcullisError && failed.code === 'PC_ERR_STORE_WRITE', 'the write fails, and says so')
  t.same(
    store.current().map((r) => r.id),
    [revocation.id],
    'in force in memory: failing to save must not leave the sandbox working',
  )
  t.equal(changes, 1, 'listeners hear of it, so its open connections close')
  await store.close()
})
