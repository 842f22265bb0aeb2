/**
 * Shares each agent's request budget and bytes/day across instances through Redis (SPEC §7),
 * while admission stays synchronous and local.
 *
 * Design:
 * 1. Every instance admits on its own (limiter.ts) and counts what it admitted since the last sync.
 * 2. Every `syncIntervalMs` (default 25 ms) one sync runs: `limiter.shared.drain()` hands over those
 *    counts (for every agent active in the last minute, even with nothing new, so that what the
 *    other instances admitted becomes known), and ONE atomic Lua script per agent — EVALSHA,
 *    pipelined for all agents — adds them to per-minute counters and returns the global totals (and the previous minute's, for the sliding window):
 *      `<prefix>rl:{<agent>}:<epochMinute>`  requests in that minute   (EXPIRE 120 s)
 *      `<prefix>bytes:{<agent>}:<yyyymmdd>`  bytes in that UTC day     (EXPIRE 2 days)
 *    The `{agent}` hash tag keeps both keys of a script in one Redis Cluster slot.
 *    Each sync also heartbeats `<prefix>instances` (a sorted set scored by Redis TIME), which says
 *    how many instances are alive.
 * 3. `limiter.shared.settle()` stores the totals; until the next sync, this instance admits only its
 *    share of what was left, ceil((budget - global) / instances), AND only while its local token
 *    bucket allows it (min of both). Two instances together therefore admit one budget per minute,
 *    not twice it, however fast requests arrive between syncs: within a few requests (rounding,
 *    and what another instance admitted since its last sync).
 * 4. At most one sync is in flight. If Redis is not ready, a sync fails, or one takes longer than
 *    `staleAfterMs`, the limiter falls back to purely local limits (`PC_LIMITS_LOCAL_FALLBACK`,
 *    warn, once per outage) and `fallback()` is true; the next successful sync turns sharing back on
 *    (`PC_LIMITS_SHARED`, info). Counts in flight when a sync fails are dropped (they may or may
 *    not have been counted); counts admitted during an outage are sent on recovery.
 * The data path never awaits Redis: only the interval timer touches the client.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Limiter, UsageCounts } from './limiter.js'

export interface RedisSyncOptions {
  /** Key prefix, default `portcullis:`. */
  readonly prefix?: string
  /** This instance's id in the live-instance set (default: host:pid:random). */
  readonly instance?: string
  readonly syncIntervalMs?: number
  /** How long Redis may be unready (or one sync may take) before falling back; default max(1000, 10 × interval). */
  readonly staleAfterMs?: number
  readonly log: Logger
}

export interface RedisSync {
  stop(): void
  /** True while limits are purely local (Redis unreachable, or not yet synced). */
  fallback(): boolean
  /** Live instances sharing the budgets, as of the last sync (1 before the first and while falling back). */
  instances(): number
}

type RedisClient = Redis | Cluster

const COMMAND = 'portcullisLimitSync'
const MINUTE_TTL_S = 120
const DAY_TTL_S = 2 * 86_400

/**
 * KEYS: requests key, bytes key, previous minute's requests key. ARGV: request delta, byte delta,
 * request TTL, byte TTL. Returns both totals and the previous minute's requests.
 */
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
return { add(KEYS[1], ARGV[1], ARGV[3]), add(KEYS[2], ARGV[2], ARGV[4]), tonumber(redis.call('GET', KEYS[3]) or '0') }
`

/** An instance is alive while it has heartbeaten within this window. */
const INSTANCE_WINDOW_MS = 5000
const HEARTBEAT = 'portcullisHeartbeat'
/** KEYS: instances key. ARGV: instance id, window ms. Records the caller as alive; returns how many are. TIME is Redis's clock, the same for every instance. */
const HEARTBEAT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
`

type HeartbeatCommand = (instancesKey: string, instance: string, windowMs: number) => Promise<unknown>
type SyncCommand = (reqKey: string, bytesKey: string, prevReqKey: string, reqs: number, bytes: number, reqTtl: number, bytesTtl: number) => unknown
type WithSync<T> = T & { [COMMAND]: SyncCommand; [HEARTBEAT]: HeartbeatCommand }

function isTotals(v: unknown): v is [number, number, number] {
  return Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number' && typeof v[2] === 'number'
}

/** Redis is not coming back soon: these states are entered only after a connection was lost or closed. */
const DOWN_STATES = new Set(['reconnecting', 'close', 'end'])

/** Names one running instance in Redis: host, pid and a random part (pids repeat across containers). */
export function newInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
}

export function attachRedisSync(limiter: Limiter, client: RedisClient, opts: RedisSyncOptions): RedisSync {
  const prefix = opts.prefix ?? 'portcullis:'
  const intervalMs = opts.syncIntervalMs ?? 25
  const staleAfterMs = opts.staleAfterMs ?? Math.max(1000, 10 * intervalMs)
  const log = opts.log
  const instance = opts.instance ?? newInstanceId()
  const instancesKey = `${prefix}instances`
  client.defineCommand(COMMAND, { numberOfKeys: 3, lua: SCRIPT })
  client.defineCommand(HEARTBEAT, { numberOfKeys: 1, lua: HEARTBEAT_SCRIPT })

  let generation = 0
  let inflightSince: number | null = null
  let notReadySince: number | null = null
  let degraded = false
  let stopped = false
  let liveInstances = 1
  limiter.shared.setShared(false)

  const keysOf = (c: UsageCounts): [string, string, string] => [`${prefix}rl:{${c.agentId}}:${c.minute}`, `${prefix}bytes:{${c.agentId}}:${c.day}`, `${prefix}rl:{${c.agentId}}:${c.minute - 1}`]

  function toTotals(c: UsageCounts, v: unknown): UsageCounts {
    if (!isTotals(v)) throw new Error('unexpected reply from the limit sync script')
    return { ...c, requests: v[0], bytes: v[1], previousRequests: v[2] }
  }

  /** One round trip: this instance's heartbeat (how many instances are alive) and the batch's totals. */
  async function run(batch: readonly UsageCounts[]): Promise<{ instances: number; totals: UsageCounts[] }> {
    if (client.isCluster) {
      // A Cluster pipeline must stay within one slot group; agents hash to many slots, so send the
      // scripts separately (ioredis writes them back to back and routes each to its slot).
      const cluster = client as WithSync<Cluster>
      const [alive, ...replies] = await Promise.all([
        cluster[HEARTBEAT](instancesKey, instance, INSTANCE_WINDOW_MS),
        ...batch.map((c) => cluster[COMMAND](...keysOf(c), c.requests, c.bytes, MINUTE_TTL_S, DAY_TTL_S)),
      ])
      return { instances: Number(alive), totals: batch.map((c, i) => toTotals(c, replies[i])) }
    }
    const p = client.pipeline() as WithSync<ReturnType<Redis['pipeline']>>
    p[HEARTBEAT](instancesKey, instance, INSTANCE_WINDOW_MS)
    for (const c of batch) p[COMMAND](...keysOf(c), c.requests, c.bytes, MINUTE_TTL_S, DAY_TTL_S)
    const replies = (await p.exec()) ?? []
    const reply = (i: number): unknown => {
      const [err, v] = replies[i] ?? [new Error('missing reply'), null]
      if (err) throw err
      return v
    }
    return { instances: Number(reply(0)), totals: batch.map((c, i) => toTotals(c, reply(i + 1))) }
  }

  function degrade(err?: unknown): void {
    limiter.shared.setShared(false)
    if (degraded) return
    degraded = true
    // The reason as one line: an expected outage is not a stack trace.
    const reason = err instanceof Error ? err.message : err === undefined ? 'not connected' : String(err)
    log.warn({ code: 'PC_LIMITS_LOCAL_FALLBACK', reason }, 'Redis unreachable: rate limits fall back to per-instance limits')
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
    const mine = ++generation
    inflightSince = t
    run(batch).then(
      ({ instances, totals }) => {
        if (mine !== generation) return
        inflightSince = null
        liveInstances = Math.max(1, instances)
        limiter.shared.setInstances(liveInstances)
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
      // Leave the instance count at once rather than after the window (best effort).
      if (client.status === 'ready') client.zrem(instancesKey, instance).catch(() => undefined)
    },
    fallback: () => !limiter.shared.isShared(),
    // While limits are local (fallback), this instance shares with no one.
    instances: () => (limiter.shared.isShared() ? liveInstances : 1),
  }
}
