/**
 * Shares each agent's request budget and bytes/day across instances through Redis (SPEC §7),
 * while admission stays synchronous and local.
 *
 * Design:
 * 1. Every instance admits on its own (limiter.ts) and counts what it admitted since the last sync.
 * 2. Every `syncIntervalMs` (default 100) one sync runs: `limiter.shared.drain()` hands over those
 *    counts (for every agent active in the last minute, even with nothing new, so that what the
 *    other instances admitted becomes known), and ONE atomic Lua script per agent — EVALSHA,
 *    pipelined for all agents — adds them to fixed-window counters and returns the global totals:
 *      `<prefix>rl:{<agent>}:<epochMinute>`  requests in that minute   (EXPIRE 120 s)
 *      `<prefix>bytes:{<agent>}:<yyyymmdd>`  bytes in that UTC day     (EXPIRE 2 days)
 *    The `{agent}` hash tag keeps both keys of a script in one Redis Cluster slot.
 * 3. `limiter.shared.settle()` stores the totals; from then on the limiter admits only while
 *    global-known + in-flight + unsynced < budget, AND its local token bucket allows it (min of
 *    both). Two instances together therefore admit about one budget per minute, not twice it; the
 *    slop is what the instances admit during one sync interval before they see each other's counts.
 * 4. At most one sync is in flight. If Redis is not ready, a sync fails, or one takes longer than
 *    `staleAfterMs`, the limiter falls back to purely local limits (`PC_LIMITS_LOCAL_FALLBACK`,
 *    warn, once per outage) and `fallback()` is true; the next successful sync turns sharing back on
 *    (`PC_LIMITS_SHARED`, info). Counts in flight when a sync fails are dropped (they may or may
 *    not have been counted); counts admitted during an outage are sent on recovery.
 * The data path never awaits Redis: only the interval timer touches the client.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Limiter, UsageCounts } from './limiter.js'

export interface RedisSyncOptions {
  /** Key prefix, default `portcullis:`. */
  readonly prefix?: string
  readonly syncIntervalMs?: number
  /** How long Redis may be unready (or one sync may take) before falling back; default max(1000, 10 × interval). */
  readonly staleAfterMs?: number
  readonly log: Logger
}

export interface RedisSync {
  stop(): void
  /** True while limits are purely local (Redis unreachable, or not yet synced). */
  fallback(): boolean
}

type RedisClient = Redis | Cluster

const COMMAND = 'portcullisLimitSync'
const MINUTE_TTL_S = 120
const DAY_TTL_S = 2 * 86_400

/** KEYS: requests key, bytes key. ARGV: request delta, byte delta, request TTL, byte TTL. Returns both totals. */
const SCRIPT = `
local function add(key, delta, ttl)
  local n = tonumber(delta)
  if n > 0 then
    local v = redis.call('INCRBY', key, delta)
    if v == n then redis.call('EXPIRE', key, ttl) end
    return v
  end
  return tonumber(redis.call('GET', key) or '0')
end
return { add(KEYS[1], ARGV[1], ARGV[3]), add(KEYS[2], ARGV[2], ARGV[4]) }
`

type SyncCommand = (reqKey: string, bytesKey: string, reqs: number, bytes: number, reqTtl: number, bytesTtl: number) => unknown
type WithSync<T> = T & { [COMMAND]: SyncCommand }

function isTotals(v: unknown): v is [number, number] {
  return Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number'
}

/** Redis is not coming back soon: these states are entered only after a connection was lost or closed. */
const DOWN_STATES = new Set(['reconnecting', 'close', 'end'])

export function attachRedisSync(limiter: Limiter, client: RedisClient, opts: RedisSyncOptions): RedisSync {
  const prefix = opts.prefix ?? 'portcullis:'
  const intervalMs = opts.syncIntervalMs ?? 100
  const staleAfterMs = opts.staleAfterMs ?? Math.max(1000, 10 * intervalMs)
  const log = opts.log
  client.defineCommand(COMMAND, { numberOfKeys: 2, lua: SCRIPT })

  let generation = 0
  let inflightSince: number | null = null
  let notReadySince: number | null = null
  let degraded = false
  let stopped = false
  limiter.shared.setShared(false)

  const keysOf = (c: UsageCounts): [string, string] => [`${prefix}rl:{${c.agentId}}:${c.minute}`, `${prefix}bytes:{${c.agentId}}:${c.day}`]

  function toTotals(c: UsageCounts, v: unknown): UsageCounts {
    if (!isTotals(v)) throw new Error('unexpected reply from the limit sync script')
    return { ...c, requests: v[0], bytes: v[1] }
  }

  async function run(batch: readonly UsageCounts[]): Promise<UsageCounts[]> {
    if (client.isCluster) {
      // A Cluster pipeline must stay within one slot group; agents hash to many slots, so send the
      // scripts separately (ioredis writes them back to back and routes each to its slot).
      const cluster = client as WithSync<Cluster>
      const replies = await Promise.all(batch.map((c) => cluster[COMMAND](...keysOf(c), c.requests, c.bytes, MINUTE_TTL_S, DAY_TTL_S)))
      return batch.map((c, i) => toTotals(c, replies[i]))
    }
    const p = client.pipeline() as WithSync<ReturnType<Redis['pipeline']>>
    for (const c of batch) p[COMMAND](...keysOf(c), c.requests, c.bytes, MINUTE_TTL_S, DAY_TTL_S)
    const replies = (await p.exec()) ?? []
    return batch.map((c, i) => {
      const [err, v] = replies[i] ?? [new Error('missing reply'), null]
      if (err) throw err
      return toTotals(c, v)
    })
  }

  function degrade(err?: unknown): void {
    limiter.shared.setShared(false)
    if (degraded) return
    degraded = true
    log.warn({ code: 'PC_LIMITS_LOCAL_FALLBACK', err }, 'Redis unreachable: rate limits fall back to per-instance limits')
  }

  function recover(): void {
    if (limiter.shared.isShared()) return
    limiter.shared.setShared(true)
    degraded = false
    log.info({ code: 'PC_LIMITS_SHARED' }, 'rate limits are shared through Redis')
  }

  function tick(): void {
    const t = Date.now()
    if (inflightSince !== null) {
      if (t - inflightSince <= staleAfterMs) return
      generation++ // a late answer is ignored
      inflightSince = null
      limiter.shared.abandon()
      degrade(new Error('limit sync timed out'))
    }
    if (client.status !== 'ready') {
      notReadySince ??= t
      if (DOWN_STATES.has(client.status) || t - notReadySince > staleAfterMs) degrade()
      return
    }
    notReadySince = null
    const batch = limiter.shared.drain()
    if (batch.length === 0) {
      recover()
      return
    }
    const mine = ++generation
    inflightSince = t
    run(batch).then(
      (totals) => {
        if (mine !== generation) return
        inflightSince = null
        limiter.shared.settle(totals)
        recover()
      },
      (err: unknown) => {
        if (mine !== generation) return
        inflightSince = null
        limiter.shared.abandon()
        degrade(err)
      },
    )
  }

  const timer = setInterval(tick, intervalMs)
  timer.unref()

  return {
    stop() {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      generation++
      limiter.shared.abandon()
      limiter.shared.setShared(false)
    },
    fallback: () => !limiter.shared.isShared(),
  }
}
