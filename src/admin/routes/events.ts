import type { ServerResponse } from 'node:http'
import type { Bus, Sink } from '../../telemetry/bus.js'
import { matchesFilter } from '../../telemetry/event-filter.js'
import type { TelemetryRecord } from '../../telemetry/events.js'
import type { RingSink } from '../../telemetry/ring-sink.js'
import {
  cursorKind,
  isQueryError,
  parseEventQuery,
  queryRing,
  type EventPage,
  type EventQuery,
} from '../event-query.js'
import { sendJson, type Route } from '../server.js'

export interface EventSource {
  readonly ring: RingSink
  readonly bus: Bus
  /** Other instances' records, followed from the Redis stream (live views show every instance). */
  readonly remote?: Bus | null
  /** The Redis stream reader when telemetry.redis is configured (it holds more history than the ring). */
  readonly redis?: { query(q: EventQuery): Promise<EventPage> } | null
  /** Called with the number of records a slow SSE client missed (for a metric). */
  readonly onStreamDrop?: (count: number) => void
  /** Comment line interval that keeps proxies and idle timeouts from closing the stream. */
  readonly keepaliveMs?: number
}

const KEEPALIVE_MS = 15_000
const RETRY_MS = 2000
/** Per-client backlog (beyond the kernel's socket buffer) before records are dropped for that client. */
const MAX_PENDING_BYTES = 256 * 1024

/** `event: <kind>` + `data: <json>`; JSON never contains a raw newline, so one data line suffices. */
function frame(record: TelemetryRecord): string {
  return `event: ${record.event}\ndata: ${JSON.stringify(record)}\n\n`
}

/**
 * GET /api/events (one page, newest first) and GET /api/events/stream (SSE,
 * live from the bus). The stream's bus subscription only writes to the
 * socket: when the client cannot keep up (its unsent backlog reaches
 * MAX_PENDING_BYTES, i.e. `write` has been returning false for a while)
 * records for that client are dropped and counted until the socket drains,
 * then an `event: dropped` frame tells the client how many it missed. The bus
 * never waits, and no client can make the process buffer without bound.
 */
export function eventRoutes(src: EventSource): Route[] {
  const keepaliveMs = src.keepaliveMs ?? KEEPALIVE_MS
  return [
    {
      method: 'GET',
      path: '/api/events',
      handler: async (_req, res, url) => {
        const q = parseEventQuery(url.searchParams, new Date())
        if (isQueryError(q)) return sendJson(res, 400, { error: 'bad_query', message: q.error })
        const wanted = src.redis ? 'stream' : 'record'
        if (q.cursor !== undefined && cursorKind(q.cursor) !== wanted) {
          return sendJson(res, 400, {
            error: 'bad_query',
            message: `cursor is not from this event source (${src.redis ? 'Redis' : 'memory'}); start again without a cursor`,
          })
        }
        if (!src.redis) return sendPage(res, 'memory', queryRing(src.ring.snapshot(), q))
        let page: EventPage
        try {
          page = await src.redis.query(q)
        } catch {
          // Redis is down: the first page can still come from this instance's ring; later pages cannot.
          if (q.cursor !== undefined)
            return sendJson(res, 503, {
              error: 'redis_unavailable',
              message: "Redis is unreachable; start again without a cursor to read this instance's memory",
            })
          // Only the first page: a memory cursor could not continue once Redis answers again.
          return sendPage(res, 'memory', { records: queryRing(src.ring.snapshot(), q).records, nextCursor: null })
        }
        sendPage(res, 'redis', page)
      },
    },
    {
      method: 'GET',
      path: '/api/events/stream',
      handler: (req, res, url) => {
        const q = parseEventQuery(url.searchParams, new Date())
        if (isQueryError(q)) return sendJson(res, 400, { error: 'bad_query', message: q.error })
        // A live stream has no pages: limit and cursor belong to /api/events.
        for (const key of ['cursor', 'limit'])
          if (url.searchParams.has(key))
            return sendJson(res, 400, {
              error: 'bad_query',
              message: `${key} applies to /api/events only; the stream takes decision, agent, host, reason, since and until`,
            })
        // HEAD (a probe, `curl -I`): the stream's head, and no stream behind it.
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' })
          return void res.end()
        }
        startStream(src, q, keepaliveMs, res)
        req.socket.setTimeout(0)
      },
    },
  ]
}

/** `source` tells the reader where the page came from (memory holds only this instance's recent records). */
function sendPage(res: ServerResponse, source: 'redis' | 'memory', page: EventPage): void {
  sendJson(res, 200, { events: page.records, next_cursor: page.nextCursor, source })
}

function startStream(src: EventSource, q: EventQuery, keepaliveMs: number, res: ServerResponse): void {
  let dropped = 0
  // res.write returns false as soon as one tick's writes pass 16 KiB (the socket is corked until
  // the next tick), so a small bounded backlog absorbs bursts; past it the client is too slow.
  const full = (): boolean => res.writableLength >= MAX_PENDING_BYTES
  const sink: Sink = {
    name: 'admin-sse',
    write(record) {
      if (!matchesFilter(record, q)) return
      if (full()) dropped++
      else res.write(frame(record))
    },
  }
  const onDrain = (): void => {
    if (dropped === 0) return
    src.onStreamDrop?.(dropped)
    res.write(`event: dropped\ndata: ${JSON.stringify({ dropped })}\n\n`)
    dropped = 0
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  })
  res.write(`retry: ${RETRY_MS}\n: connected\n\n`)
  const unsubscribes = [src.bus.subscribe(sink), ...(src.remote ? [src.remote.subscribe(sink)] : [])]
  const keepalive = setInterval(() => {
    if (!full()) res.write(': keepalive\n\n')
  }, keepaliveMs)
  keepalive.unref()
  res.on('drain', onDrain)
  res.once('close', () => {
    for (const unsubscribe of unsubscribes) unsubscribe()
    clearInterval(keepalive)
    res.off('drain', onDrain)
    if (dropped > 0) src.onStreamDrop?.(dropped)
  })
}
