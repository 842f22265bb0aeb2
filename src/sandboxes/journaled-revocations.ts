import type { Logger } from 'pino'
import { isKept, type Revocation, type RevocationStore } from './revocation-store.js'

/**
 * With Redis, revocations are shared through it, and each one this instance makes is also written to
 * the file it would keep without Redis (file-revocations.ts). So moving between the two keeps them:
 * a file's revocations are written to Redis once it has been read (an instance that starts using
 * Redis un-revokes nothing), and the file still holds what was revoked here when Redis is dropped.
 * The file's entries stay in force even before Redis has them. Redis stays the one the admin API
 * waits for: a revocation Redis did not take is not done (503), as before.
 */
export function journaledRevocations(shared: RevocationStore, file: RevocationStore, log: Logger): RevocationStore {
  let migrated = false
  const migrate = (): void => {
    if (migrated || !shared.loaded()) return
    migrated = true
    const known = new Set(shared.current().map((r) => r.id))
    const now = Date.now()
    const missing = file.current().filter((r) => !known.has(r.id) && isKept(r, now))
    if (missing.length === 0) return
    Promise.all(missing.map((r) => shared.add(r))).then(
      () =>
        log.info(
          { code: 'PC_SANDBOX_REVOCATIONS_MIGRATED', count: missing.length },
          'sandbox revocations kept in the file were written to Redis',
        ),
      (err: unknown) => {
        migrated = false // Redis failed meanwhile: again once it is back
        log.warn(
          { code: 'PC_SANDBOX_REVOCATIONS_FILE', err },
          'sandbox revocations kept in the file could not be written to Redis yet; tried again when it answers',
        )
      },
    )
  }
  shared.onChange(migrate)
  migrate()
  return {
    current() {
      const inFile = file.current()
      if (inFile.length === 0) return shared.current()
      const seen = new Set(shared.current().map((r) => r.id))
      return [...shared.current(), ...inFile.filter((r) => !seen.has(r.id))]
    },
    loaded: () => shared.loaded(),
    async add(r: Revocation) {
      await shared.add(r)
      await file
        .add(r)
        .catch((err: unknown) =>
          log.warn(
            { code: 'PC_SANDBOX_REVOCATIONS_FILE', err },
            'a revocation shared through Redis was not kept in the file',
          ),
        )
    },
    onChange(listener) {
      shared.onChange(listener)
      file.onChange(listener)
    },
    async close() {
      await Promise.all([shared.close(), file.close()])
    },
  }
}
