import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { PortcullisError } from '../errors.js'
import { sendJson } from './server.js'

/**
 * A store write that failed, answered 503. A file store (no Redis) throws PC_ERR_STORE_WRITE naming
 * its file and the OS error: that is said and logged, since nothing else tells the operator (the
 * change was not made, stores/yaml-file.ts). Anything else is Redis out of reach, which its client
 * already logs: `unreachable` says so in the store's words.
 */
export function sendStoreFailure(
  res: ServerResponse,
  err: unknown,
  log: Logger,
  unreachable: { readonly error: string; readonly message: string },
  inForceUnsaved = false,
): void {
  if (!(err instanceof PortcullisError && err.code === 'PC_ERR_STORE_WRITE')) return sendJson(res, 503, unreachable)
  const outcome = inForceUnsaved
    ? 'it is in force on this instance until it restarts, but not saved'
    : 'nothing was changed'
  log.error({ code: err.code, err: err.cause }, `${err.message}; the change asked of the admin API: ${outcome}`)
  sendJson(res, 503, {
    error: unreachable.error,
    message: `${err.message}; ${outcome}: let the proxy write there (or free the disk) and try again`,
  })
}
