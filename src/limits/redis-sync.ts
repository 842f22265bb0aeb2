/**
 * Shares each agent's request budget and bytes/day across instances through Redis (SPEC §7),
 * while admission stays synchronous and local (limiter.ts, ledger.ts).
 *
 * Every `syncIntervalMs` (default 25 ms) one sync runs, in one round trip (a pipeline; separate
 * commands on a Cluster): this instance's heartbeat (how many instances are alive), the agents
 * counted this minute (`<prefix>rl-active:<epochMinute>`, scored by when they were last in use,
 * which tells each instance what others serve), and per agent reported by
 * `limiter.shared.drain()` ONE atomic script (sync-script.ts).
 *
 * At most one sync is in flight. If Redis is not ready, a sync fails, or one takes longer than
 * `staleAfterMs`, the limiter falls back to purely local limits (`PC_LIMITS_LOCAL_FALLBACK`, warn,
 * once per outage) and `fallback()` is true; the next successful sync turns sharing back on
 * (`PC_LIMITS_SHARED`, info). What was in flight when a sync failed is forgotten (whether Redis
 * applied it is unknown); counts admitted during an outage are sent on recovery. The data path
 * never awaits Redis: only the interval timer touches the client.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisClient } from '../redis/client.js'
import { newInstanceId } from '../redis/instance-id.js'
import type { Limiter } from './limiter.js'
import type { LearnedAgent, UsageReport, UsageTotals } from './shared-usage.js'
import {
  DAY_TTL_S,
  HEARTBEAT_SCRIPT,
  heartbeatCall,
  LIMIT_SYNC_KEY_COUNT,
  LIMIT_SYNC_SCRIPT,
  limitSyncCall,
  limitSyncKeys,
  MINUTE_TTL_S,
  parseLimitSyncReply,
} from './sync-script.js'
import { minuteOf } from './windows.js'

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

/** One sync's answer; `failure` set when part of it failed (a Cluster node down): `totals` then holds what was applied. */
interface SyncResult {
  readonly live: string[]
  readonly totals: UsageTotals[]
  readonly learned: Announced[]
  readonly minute: number
  readonly failure: unknown
}

/** An agent read from an active set, and when it was last in use. */
type Announced = Omit<LearnedAgent, 'rpm'>

const COMMAND = 'portcullisLimitSync'

/** With nothing to report, a sync (heartbeat, learning) runs at most this often. */
const IDLE_SYNC_MS = 250

/** Agents added to the active set this recently are read back at every sync (clocks differ a little between instances). */
const ACTIVE_LOOKBACK_MS = 5000

/** An instance is alive while it has heartbeaten within this window. */
const INSTANCE_WINDOW_MS = 5000
const HEARTBEAT = 'portcullisHeartbeat'

type HeartbeatCommand = (instancesKey: string, instance: string, windowMs: number) => Promise<unknown>
type SyncCommand = (...args: Array<string | number>) => unknown
type WithSync<T> = T & { [COMMAND]: SyncCommand; [HEARTBEAT]: HeartbeatCommand }

/** Redis is not coming back soon: these states are entered only after a connection was lost or closed. */
const DOWN_STATES = new Set(['reconnecting', 'close', 'end'])

export function attachRedisSync(limiter: Limiter, client: RedisClient, opts: RedisSyncOptions): RedisSync {
  const prefix = opts.prefix ?? 'portcullis:'
  const intervalMs = opts.syncIntervalMs ?? 25
  const staleAfterMs = opts.staleAfterMs ?? Math.max(1000, 10 * intervalMs)
  const log = opts.log
  const instance = opts.instance ?? newInstanceId()
  const instancesKey = `${prefix}instances`
  client.defineCommand(COMMAND, { numberOfKeys: LIMIT_SYNC_KEY_COUNT, lua: LIMIT_SYNC_SCRIPT })
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

  const argsOf = (c: UsageReport): Array<string | number> =>
    limitSyncCall(limitSyncKeys(prefix, c.agentId, c.minute, c.day), {
      instance,
      requests: c.requests,
      returned: c.returned,
      want: c.want,
      rpm: c.rpm,
      previousWeightMilli: c.previousWeight,
      requestTtlS: MINUTE_TTL_S,
      bytes: c.bytes,
      bytesTtlS: DAY_TTL_S,
      liveInstances: liveIds,
    })

  function toTotals(c: UsageReport, v: unknown): UsageTotals {
    const reply = parseLimitSyncReply(v)
    return {
      agentId: c.agentId,
      minute: c.minute,
      granted: reply.granted,
      requests: reply.requests,
      bytes: reply.bytes,
      previousRequests: reply.previousRequests,
      day: c.day,
    }
  }

  const heartbeat = heartbeatCall({ key: instancesKey, instance, windowMs: INSTANCE_WINDOW_MS })

  const activeKey = (minute: number): string => `${prefix}rl-active:${minute}`

  /**
   * Announce in this minute's active set every agent the batch counts requests for (used or held):
   * an instance that starts reads the set, so it learns every agent with a count. The score is when
   * the agent was last in use, not now: a reserve kept, announced as new use, would have every
   * instance learn it again and keep it in its sync for ever.
   */
  function activeAdds(batch: readonly UsageReport[]): Array<string | number> {
    const add: Array<string | number> = []
    for (const c of batch) if (c.want > 0 || c.requests > 0) add.push(c.usedMs, c.agentId)
    return add
  }

  /**
   * Which agents to learn: at this instance's first sync of a minute (and so at start), every agent
   * active in this minute and the previous one; otherwise the ones scored in the last few seconds.
   * (An agent this instance does not know is one it could admit on its own share: it must know
   * every agent that has a count in the sliding window. One announced again with an old score, for
   * the reserve an instance holds, it learned when its use was announced, or at the full read.)
   */
  function reads(now: number): Array<{ key: string; min: number | string }> {
    const minute = minuteOf(now)
    if (minute === readMinute) return [{ key: activeKey(minute), min: now - ACTIVE_LOOKBACK_MS }]
    return [
      { key: activeKey(minute), min: '-inf' },
      { key: activeKey(minute - 1), min: '-inf' },
    ]
  }

  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

  /** A `ZRANGEBYSCORE … WITHSCORES` reply (member, score, member, score…): each agent and when it was last in use. */
  function announced(v: unknown): Announced[] {
    const flat = strings(v)
    const out: Announced[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const usedMs = Number(flat[i + 1])
      if (Number.isFinite(usedMs)) out.push({ agentId: flat[i] as string, usedMs })
    }
    return out
  }

  /** One round trip: heartbeat (which instances are alive), the active sets, the batch's scripts. */
  async function run(batch: readonly UsageReport[]): Promise<SyncResult> {
    const now = Date.now()
    const minute = minuteOf(now)
    const add = activeAdds(batch)
    const toRead = reads(now)
    if (client.isCluster) {
      // A Cluster pipeline must stay within one slot group; agents hash to many slots, so send the
      // commands separately (ioredis writes them back to back and routes each to its slot).
      const cluster = client as WithSync<Cluster>
      const written =
        add.length > 0
          ? cluster.zadd(activeKey(minute), ...add).then(() => cluster.expire(activeKey(minute), MINUTE_TTL_S))
          : Promise.resolve(0)
      // Each agent's script runs on its own slot's node: with one node down the others still apply
      // theirs, grants included. Those are settled, not forgotten with the failed ones: tokens granted
      // and forgotten at every sync while a node was down added up to a healthy agent's whole budget.
      const [alive, ...rest] = await Promise.allSettled([
        cluster[HEARTBEAT](...heartbeat),
        ...toRead.map((r) => written.then(() => cluster.zrangebyscore(r.key, r.min, '+inf', 'WITHSCORES'))),
        ...batch.map((c) => cluster[COMMAND](...argsOf(c))),
      ])
      const failure = [alive, ...rest].find((r): r is PromiseRejectedResult => r.status === 'rejected')
      const value = (r: PromiseSettledResult<unknown> | undefined): unknown =>
        r?.status === 'fulfilled' ? r.value : undefined
      const totals: UsageTotals[] = []
      batch.forEach((c, i) => {
        const r = rest[toRead.length + i]
        if (r?.status === 'fulfilled') totals.push(toTotals(c, r.value))
      })
      return {
        live: strings(value(alive)),
        totals,
        learned: rest.slice(0, toRead.length).flatMap((r) => announced(value(r))),
        minute,
        failure: failure === undefined ? null : failure.reason,
      }
    }
    const p = client.pipeline() as WithSync<ReturnType<Redis['pipeline']>>
    void p[HEARTBEAT](...heartbeat)
    if (add.length > 0) p.zadd(activeKey(minute), ...add).expire(activeKey(minute), MINUTE_TTL_S)
    for (const r of toRead) p.zrangebyscore(r.key, r.min, '+inf', 'WITHSCORES')
    for (const c of batch) p[COMMAND](...argsOf(c))
    const replies = (await p.exec()) ?? []
    const reply = (i: number): unknown => {
      const [err, v] = replies[i] ?? [new Error('missing reply'), null]
      if (err) throw err
      return v
    }
    const first = add.length > 0 ? 3 : 1
    const learned = toRead.flatMap((_, i) => announced(reply(first + i)))
    return {
      live: strings(reply(0)),
      totals: batch.map((c, i) => toTotals(c, reply(first + toRead.length + i))),
      learned,
      minute,
      failure: null,
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
      ({ live, totals, learned, minute, failure }) => {
        if (mine !== generation) return
        inflightSince = null
        if (failure !== null) {
          // Part of it failed (a Cluster node down): what was applied is kept, the rest forgotten.
          limiter.shared.settle(totals)
          limiter.shared.abandon()
          return degrade(failure)
        }
        liveIds = live.length > 0 ? live : [instance]
        readMinute = minute
        limiter.shared.setInstances(liveIds.length)
        limiter.shared.settle(totals)
        limiter.shared.learn(learned.map((a) => ({ ...a, rpm: opts.rpmOf?.(a.agentId) ?? 0 })))
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
