import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'

/**
 * Names one running instance in Redis: host, pid and a random part (pids repeat across containers).
 * The same id marks the instance's stream entries (so its tail skips them) and its heartbeat in the
 * limit sync's live-instance set.
 */
export function newInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
}
