import type { Logger } from 'pino'
import type { FdLimit } from '../net/fd-limit.js'

export type DescriptorShortage = 'accept' | 'dial'

export interface DescriptorWatch {
  /** The process ran out of file descriptors (EMFILE/ENFILE) while accepting or dialling. */
  note(where: DescriptorShortage): void
  /** A connection was refused because listen.max_connections were open (node's 'drop'). */
  noteFull(maxConnections: number): void
  /** How many times, by where (for metrics). */
  readonly counts: Readonly<Record<DescriptorShortage, number>>
}

/** An episode ends after this long without a shortage; the next one logs again. */
const EPISODE_GAP_MS = 10_000

/**
 * Running out of connections or descriptors is an operational fault of the proxy host, not a policy
 * or network event: one clear log line per episode (not one per refused connection, which would add
 * to the load), with the limit in force (read at start), and counts for the metrics. The server keeps
 * accepting once connections close. listen.max_connections (by default derived from the descriptor
 * limit) makes node refuse a connection before accept itself runs out of descriptors, which libuv
 * would absorb silently.
 */
export function createDescriptorWatch(log: Logger, limit: FdLimit, now: () => number = Date.now): DescriptorWatch {
  const counts: Record<DescriptorShortage, number> = { accept: 0, dial: 0 }
  const last = { descriptors: -Infinity, full: -Infinity }
  const startsEpisode = (kind: keyof typeof last): boolean => {
    const t = now()
    const quiet = t - last[kind] > EPISODE_GAP_MS
    last[kind] = t
    return quiet
  }
  return {
    counts,
    note(where) {
      counts[where]++
      if (!startsEpisode('descriptors')) return
      log.error(
        { code: 'PC_OUT_OF_DESCRIPTORS', where, nofile_soft: limit.soft, nofile_hard: limit.hard },
        'the proxy has run out of file descriptors: connections are refused until some close; raise the limit (ulimit -n) or lower listen.max_connections',
      )
    },
    noteFull(maxConnections) {
      if (!startsEpisode('full')) return
      log.warn(
        { code: 'PC_MAX_CONNECTIONS', max_connections: maxConnections, nofile_soft: limit.soft },
        'listen.max_connections client connections are open: new ones are refused until some close',
      )
    },
  }
}
