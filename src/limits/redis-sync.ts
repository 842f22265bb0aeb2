/**
 * Shares each agent's request budget and bytes/day across instances through Redis (SPEC §7),
 * while admission stays synchronous and local (limiter.ts says how tokens are used).
 *
 * Every `syncIntervalMs` (default 25 ms) one sync runs, in one round trip (a pipeline; separate
 * commands on a Cluster):
 * 1. this instance's heartbeat in `<prefix>instances` (a sorted set scored by Redis TIME): how many
 *    instances are alive;
 * 2. per agent reported by `limiter.shared.drain()`, ONE atomic Lua script on keys that share the
 *    `{agent}` hash tag (one Cluster slot):
 *      `<prefix>rl:{<agent>}:<epochMinute>`           requests used or held in that minute (EXPIRE 120 s)
 *      `<prefix>rl-reported:{<agent>}:<epochMinute>`  instances that reported the agent this minute
 *      `<prefix>bytes:{<agent>}:<yyyymmdd>`           bytes in that UTC day (EXPIRE 2 days)
 *    It adds what the instance admitted on its own, takes back the tokens it returns, marks it as
 *    reported, and reserves the tokens it asks for, no more than left: the budget minus this
 *    minute's count, the previous minute's weighted, and a placeholder share for every live
 *    instance that has not reported the agent yet (it may be admitting on its own right now);
 * 3. `<prefix>rl-active:<epochMinute>`: the agents with requests this minute (a sorted set scored
 *    by when an instance last reported requests for it); each instance reads the ones scored in the
 *    last few seconds and reports them too, which releases its placeholder.
 * Because tokens are reserved in Redis before they are used, the instances together admit at most
 * the budget per sliding minute (plus rounding: at most one request per instance).
 *
 * At most one sync is in flight. If Redis is not ready, a sync fails, or one takes longer than
 * `staleAfterMs`, the limiter falls back to purely local limits (`PC_LIMITS_LOCAL_FALLBACK`, warn,
 * once per outage) and `fallback()` is true; the next successful sync turns sharing back on
 * (`PC_LIMITS_SHARED`, info). What was in flight when a sync failed is dropped (tokens held are
 * dropped too: under-admission, never over); counts admitted during an outage are sent on recovery.
 * The data path never awaits Redis: only the interval timer touches the client.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Limiter, UsageReport, UsageTotals } from './limiter.js'

export interface RedisSyncOptions {
  /** Key prefix, default `portcullis:`. */
  readonly prefix?: string
  /** This instance's id in the live-instance set (default: host:pid:random). */
  readonly instance?: string
  readonly syncIntervalMs?: number
  /** How long Redis may be unready (or one sync may take) before falling back; default max(1000, 10 × interval). */
  readonly staleAfterMs?: number
  /** An agent's requests_per_minute from the policy in force (for agents this instance learns of from Redis). */
  readonly rpmOf?: (agentId: string) => number | null
  readonly log: Logger
}

export interface RedisSync {
  /** Stop syncing; tokens this instance holds are given back first (bounded by timeoutMs), so a restart strands none. */
  stop(timeoutMs?: number): Promise<void>
  /** True while limits are purely local (Redis unreachable, or not yet synced). */
  fallback(): boolean
  /** Live instances sharing the budgets, as of the last sync (1 before the first and while falling back). */
  instances(): number
  /** Resolves true at the first successful sync, false after timeoutMs (start-up waits on it before listening). */
  firstSync(timeoutMs: number): Promise<boolean>
}

type RedisClient = Redis | Cluster

const COMMAND = 'portcullisLimitSync'
const MINUTE_TTL_S = 120
const DAY_TTL_S = 2 * 86_400

/**
 * KEYS: this minute's requests, the previous minute's requests, this minute's reporters, the day's
 * bytes. ARGV: instance, requests admitted on its own, tokens returned, tokens wanted, rpm,
 * previous-minute weight (thousandths), live instances, request TTL, byte delta, byte TTL, then
 * the live instances' ids (a placeholder is counted for each that has not reported the agent).
 * Returns { granted, requests (this minute, after), bytes (today, after), previous minute's requests }.
 */
const SCRIPT = `
local function touch(key, ttl)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
end
local cur = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]) - tonumber(ARGV[3]))
touch(KEYS[1], ARGV[8])
redis.call('SADD', KEYS[3], ARGV[1])
touch(KEYS[3], ARGV[8])
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local granted = 0
local rpm = tonumber(ARGV[5])
local want = tonumber(ARGV[4])
if want > 0 and rpm > 0 then
  local n = math.max(1, tonumber(ARGV[7]))
  local unreported = 0
  for i = 11, #ARGV do
    if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 0 then unreported = unreported + 1 end
  end
  local left = rpm - cur - math.ceil(prev * tonumber(ARGV[6]) / 1000) - unreported * math.ceil(rpm / n)
  if left > 0 then
    granted = math.min(want, left)
    cur = redis.call('INCRBY', KEYS[1], granted)
  end
end
local bytes = tonumber(ARGV[9])
if bytes > 0 then
  bytes = redis.call('INCRBY', KEYS[4], bytes)
  touch(KEYS[4], ARGV[10])
else
  bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
end
return { granted, cur, bytes, prev }
`

/** With nothing to report, a sync (heartbeat, learning) runs at most this often. */
const IDLE_SYNC_MS = 250

/** Agents added to the active set this recently are read back at every sync (clocks differ a little between instances). */
const ACTIVE_LOOKBACK_MS = 5000

/** An instance is alive while it has heartbeaten within this window. */
const INSTANCE_WINDOW_MS = 5000
const HEARTBEAT = 'portcullisHeartbeat'
/** KEYS: instances key. ARGV: instance id, window ms. Records the caller as alive; returns the live instances' ids. TIME is Redis's clock, the same for every instance. */
const HEARTBEAT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`

type HeartbeatCommand = (instancesKey: string, instance: string, windowMs: number) => Promise<unknown>
type SyncCommand = (...args: Array<string | number>) => unknown
type WithSync<T> = T & { [COMMAND]: SyncCommand; [HEARTBEAT]: HeartbeatCommand }

function isReply(v: unknown): v is [number, number, number, number] {
  return Array.isArray(v) && v.length === 4 && v.every((x) => typeof x === 'number')
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
  client.defineCommand(COMMAND, { numberOfKeys: 4, lua: SCRIPT })
  client.defineCommand(HEARTBEAT, { numberOfKeys: 1, lua: HEARTBEAT_SCRIPT })

  let generation = 0
  let inflightSince: number | null = null
  let notReadySince: number | null = null
  let degraded = false
  let stopped = false
  /** Live instances' ids, as of the last sync (placeholders are counted for the ones that have not reported an agent). */
  let liveIds: readonly string[] = [instance]
  /** The minute whose active agents (and the previous minute's) this instance has read in full. */
  let readMinute = -1
  let lastRunAt = 0
  /** A sooner sync is scheduled (soon), or wanted once the one in flight is done (again). */
  let soon = false
  let again = false
  let firstSynced: () => void = () => undefined
  const synced = new Promise<void>((resolve) => (firstSynced = resolve))
  limiter.shared.setShared(false)

  const argsOf = (c: UsageReport): Array<string | number> => [
    `${prefix}rl:{${c.agentId}}:${c.minute}`,
    `${prefix}rl:{${c.agentId}}:${c.minute - 1}`,
    `${prefix}rl-reported:{${c.agentId}}:${c.minute}`,
    `${prefix}bytes:{${c.agentId}}:${c.day}`,
    instance,
    c.requests,
    c.returned,
    c.want,
    c.rpm,
    c.previousWeight,
    liveIds.length,
    MINUTE_TTL_S,
    c.bytes,
    DAY_TTL_S,
    ...liveIds,
  ]

  function toTotals(c: UsageReport, v: unknown): UsageTotals {
    if (!isReply(v)) throw new Error('unexpected reply from the limit sync script')
    return {
      agentId: c.agentId,
      minute: c.minute,
      granted: v[0],
      requests: v[1],
      bytes: v[2],
      previousRequests: v[3],
      day: c.day,
    }
  }

  const activeKey = (minute: number): string => `${prefix}rl-active:${minute}`

  /** (Re)score the agents this instance serves in this minute's active set. */
  function activeAdds(batch: readonly UsageReport[], now: number): Array<string | number> {
    const add: Array<string | number> = []
    for (const c of batch) if (c.want > 0 || c.requests > 0) add.push(now, c.agentId)
    return add
  }

  /**
   * Which agents to learn: at this instance's first sync of a minute (and so at start), every agent
   * active in this minute and the previous one; otherwise the ones scored in the last few seconds.
   * (An agent this instance does not know is one it could admit on its own share: it must know
   * every agent that has a count in the sliding window.)
   */
  function reads(now: number): Array<{ key: string; min: number | string }> {
    const minute = Math.floor(now / 60_000)
    if (minute === readMinute) return [{ key: activeKey(minute), min: now - ACTIVE_LOOKBACK_MS }]
    return [
      { key: activeKey(minute), min: '-inf' },
      { key: activeKey(minute - 1), min: '-inf' },
    ]
  }

  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

  /** One round trip: heartbeat (which instances are alive), the active sets, the batch's scripts. */
  async function run(
    batch: readonly UsageReport[],
  ): Promise<{ live: string[]; totals: UsageTotals[]; learned: string[]; minute: number }> {
    const now = Date.now()
    const minute = Math.floor(now / 60_000)
    const add = activeAdds(batch, now)
    const toRead = reads(now)
    if (client.isCluster) {
      // A Cluster pipeline must stay within one slot group; agents hash to many slots, so send the
      // commands separately (ioredis writes them back to back and routes each to its slot).
      const cluster = client as WithSync<Cluster>
      const written =
        add.length > 0
          ? cluster.zadd(activeKey(minute), ...add).then(() => cluster.expire(activeKey(minute), MINUTE_TTL_S))
          : Promise.resolve(0)
      const [alive, ...rest] = await Promise.all([
        cluster[HEARTBEAT](instancesKey, instance, INSTANCE_WINDOW_MS),
        ...toRead.map((r) => written.then(() => cluster.zrangebyscore(r.key, r.min, '+inf'))),
        ...batch.map((c) => cluster[COMMAND](...argsOf(c))),
      ])
      const learned = rest.slice(0, toRead.length).flatMap(strings)
      return {
        live: strings(alive),
        totals: batch.map((c, i) => toTotals(c, rest[toRead.length + i])),
        learned,
        minute,
      }
    }
    const p = client.pipeline() as WithSync<ReturnType<Redis['pipeline']>>
    void p[HEARTBEAT](instancesKey, instance, INSTANCE_WINDOW_MS)
    if (add.length > 0) p.zadd(activeKey(minute), ...add).expire(activeKey(minute), MINUTE_TTL_S)
    for (const r of toRead) p.zrangebyscore(r.key, r.min, '+inf')
    for (const c of batch) p[COMMAND](...argsOf(c))
    const replies = (await p.exec()) ?? []
    const reply = (i: number): unknown => {
      const [err, v] = replies[i] ?? [new Error('missing reply'), null]
      if (err) throw err
      return v
    }
    const first = add.length > 0 ? 3 : 1
    const learned = toRead.flatMap((_, i) => strings(reply(first + i)))
    return {
      live: strings(reply(0)),
      totals: batch.map((c, i) => toTotals(c, reply(first + toRead.length + i))),
      learned,
      minute,
    }
  }

  function degrade(err?: unknown): void {
    limiter.shared.setShared(false)
    if (degraded) return
    degraded = true
    // The reason as one line: an expected outage is not a stack trace.
    const reason = err instanceof Error ? err.message : err === undefined ? 'not connected' : String(err)
    log.warn(
      { code: 'PC_LIMITS_LOCAL_FALLBACK', reason },
      'Redis unreachable: rate limits fall back to per-instance limits',
    )
  }

  function recover(): void {
    if (limiter.shared.isShared()) return
    limiter.shared.setShared(true)
    degraded = false
    log.info({ code: 'PC_LIMITS_SHARED' }, 'rate limits are shared through Redis')
  }

  function tick(wanted = false): void {
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
    // Nothing to report: only the heartbeat and news of other instances' agents are due, and those
    // can wait a little (an idle instance would otherwise spend a round trip every 25 ms).
    if (batch.length === 0 && !wanted && t - lastRunAt < IDLE_SYNC_MS && limiter.shared.isShared()) return
    lastRunAt = t
    const mine = ++generation
    inflightSince = t
    run(batch).then(
      ({ live, totals, learned, minute }) => {
        if (mine !== generation) return
        inflightSince = null
        liveIds = live.length > 0 ? live : [instance]
        readMinute = minute
        limiter.shared.setInstances(liveIds.length)
        limiter.shared.settle(totals)
        limiter.shared.learn(learned.map((agentId) => ({ agentId, rpm: opts.rpmOf?.(agentId) ?? 0 })))
        recover()
        firstSynced()
        if (again) {
          again = false
          tick(true)
        }
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
  // A sync wanted sooner (limiter.onSyncWanted): one scheduled at a time; one in flight runs again when done.
  limiter.shared.onSyncWanted(() => {
    if (stopped || soon) return
    if (inflightSince !== null) {
      again = true
      return
    }
    soon = true
    setImmediate(() => {
      soon = false
      if (!stopped) tick(true)
    })
  })

  return {
    async stop(timeoutMs = 1000) {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      generation++
      const ready = client.status === 'ready' && limiter.shared.isShared()
      // A last report: what was admitted since the last sync, and every held token back.
      const last = ready ? limiter.shared.drain(undefined, { final: true }) : []
      limiter.shared.abandon()
      limiter.shared.setShared(false)
      if (client.status !== 'ready') return
      const bounded = <T>(p: Promise<T>): Promise<unknown> =>
        Promise.race([p, new Promise((r) => setTimeout(r, timeoutMs).unref())]).catch(() => undefined)
      if (last.length > 0) await bounded(run(last))
      // Leave the instance count at once rather than after the window (best effort).
      await bounded(client.zrem(instancesKey, instance))
    },
    fallback: () => !limiter.shared.isShared(),
    // While limits are local (fallback), this instance shares with no one.
    instances: () => (limiter.shared.isShared() ? liveIds.length : 1),
    firstSync: (timeoutMs) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs)
        timer.unref()
        void synced.then(() => {
          clearTimeout(timer)
          resolve(true)
        })
      }),
  }
}
