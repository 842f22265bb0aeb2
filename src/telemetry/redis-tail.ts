import type { Logger } from 'pino'
import { createBus, type Bus } from './bus.js'
import type { TelemetryRecord } from './events.js'
import { COMMAND_TIMEOUT_MS, type RedisClient } from '../redis/client.js'
import { decodeStreamEntry, entryField } from '../redis/stream-entry.js'

/**
 * Follows the telemetry stream for records made by OTHER instances, so the
 * live views of any instance (/api/events/stream, the analyst page,
 * `portcullis blocked --follow`) show every instance's decisions. This
 * instance's own records reach those views straight from its bus.
 *
 * XREAD BLOCK needs a connection of its own (it would hold up every other
 * command); the caller passes a dedicated client. It starts from the moment
 * it was created and, after an outage, resumes from the last entry it saw, so
 * records other instances made or buffered meanwhile still arrive. Nothing here touches the
 * data path.
 */
interface RedisTail {
  stop(): void
}

export interface RedisTailOptions {
  /** A dedicated client (fail-fast options: commands fail while disconnected). */
  readonly client: RedisClient
  readonly stream: string
  /** This instance's id, as written by the sink: entries carrying it are skipped. */
  readonly self: string
  readonly onRecord: (r: TelemetryRecord) => void
  readonly log: Logger
  readonly blockMs?: number
}

const BATCH = 500
const RETRY_MS = 250

function startRedisTail(opts: RedisTailOptions): RedisTail {
  const { client, stream, self, onRecord } = opts
  // Shorter than the client's command timeout, so an idle stream is not mistaken for a stalled Redis.
  const blockMs = opts.blockMs ?? Math.floor(COMMAND_TIMEOUT_MS / 2)
  let stopped = false
  /**
   * The last entry id seen. Until the first reply it is null; then it starts at the moment the tail
   * was created, on Redis's clock (stream ids are Redis time): records other instances made while
   * the connection was being set up are not skipped, whatever this host's clock says.
   */
  let last: string | null = null
  const createdAt = Date.now()
  let failing = false
  client.on('error', () => undefined)

  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        if (last === null) {
          const [sec, usec] = await client.time()
          const redisNowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
          last = `${Math.max(0, redisNowMs - (Date.now() - createdAt) - 1000)}-0`
        }
        const res = (await client.xread('COUNT', BATCH, 'BLOCK', blockMs, 'STREAMS', stream, last)) as Array<
          [string, Array<[string, string[]]>]
        > | null
        failing = false
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            last = id
            if (entryField(fields, 'instance') === self) continue
            // An entry this version cannot read is skipped: the stream has many writers.
            const r = decodeStreamEntry(fields)
            if (r !== null) onRecord(r)
          }
        }
      } catch (err) {
        if (stopped) return
        if (!failing)
          opts.log.debug(
            { code: 'PC_REDIS_TAIL_RETRY', err: String(err) },
            'cannot follow the telemetry stream yet; retrying',
          )
        failing = true
        await new Promise((r) => setTimeout(r, RETRY_MS).unref())
      }
    }
  }
  void loop()
  return {
    stop() {
      stopped = true
      client.disconnect()
    },
  }
}

export interface RemoteFeed extends Bus {
  stop(): void
}

/**
 * Other instances' records as a bus that follows the stream only while
 * something is subscribed (a live view is open): otherwise an instance would
 * read back every record it writes just to skip it. Each first subscriber
 * opens a fresh connection (`connect`), the last one to leave closes it.
 */
export function createRemoteFeed(
  opts: Omit<RedisTailOptions, 'client' | 'onRecord'> & { readonly connect: () => RedisClient },
): RemoteFeed {
  const inner = createBus((sink, err) =>
    opts.log.error({ code: 'PC_ERR_INTERNAL', sink, err }, 'remote record subscriber failed'),
  )
  let subscribers = 0
  let tail: RedisTail | null = null
  return {
    sinkFailures: inner.sinkFailures,
    publish: (r) => inner.publish(r),
    subscribe(sink) {
      const unsubscribe = inner.subscribe(sink)
      if (++subscribers === 1)
        tail = startRedisTail({ ...opts, client: opts.connect(), onRecord: (r) => inner.publish(r) })
      let done = false
      return () => {
        if (done) return
        done = true
        unsubscribe()
        if (--subscribers === 0) {
          tail?.stop()
          tail = null
        }
      }
    },
    stop() {
      tail?.stop()
      tail = null
    },
  }
}
