import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Code } from '../codes.js'
import type { EntryRules, KeyedEntry, KeyedStore } from '../stores/keyed-store.js'
import { COMMAND_TIMEOUT_MS, type RedisClient } from './client.js'

/**
 * A write Redis runs later than this after it was sent does nothing. The caller gives up on the reply
 * at COMMAND_TIMEOUT_MS and answers 503; a Redis that was stalled (paused, swapping) and then ran the
 * write anyway would apply an approval, or a revocation, that the admin was told had failed, with no
 * audit record of it. The second between the two leaves the reply of a write run in time to arrive.
 */
export const WRITE_DEADLINE_MS = COMMAND_TIMEOUT_MS - 1000

/**
 * One write (set, set-if-absent, or delete) of one field, and its announcement, run only before a
 * deadline in Redis's own clock (milliseconds). Answers -1 when too late, else what HSET, HSETNX or
 * HDEL answered. A delete with a prefix (ARGV[6]) moves the entry to `<prefix><id>` in the same hash
 * (one key: one Cluster slot, one atomic step). TIME in a script needs effects replication, Redis's
 * default since 5.
 */
const FENCED_WRITE = `
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then return -1 end
local r
if ARGV[2] == 'del' then
  local v = redis.call('HGET', KEYS[1], ARGV[3])
  r = redis.call('HDEL', KEYS[1], ARGV[3])
  if v and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], ARGV[6] .. ARGV[3], v) end
elseif ARGV[2] == 'setnx' then r = redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[4])
else r = redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[3])
return r
`

/**
 * What a resync puts right in one step, then announces: ARGV[1] the channel, ARGV[2] the removal
 * prefix, then (op, id, json) triples. `again`: a removed entry is back (Redis restored from an older
 * copy), so it is removed again; `mark`: a removal Redis lost is written back; `restore`: an entry
 * Redis lost is written back, unless it has been removed meanwhile. Answers how many entries it
 * deleted again and wrote back (a resync that read Redis just before a removal finds less to do).
 */
const REPAIR = `
local prefix, again, restored = ARGV[2], 0, 0
for i = 3, #ARGV, 3 do
  local op, id, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'again' then
    again = again + redis.call('HDEL', KEYS[1], id)
    redis.call('HSET', KEYS[1], prefix .. id, json)
  elseif op == 'mark' then redis.call('HSETNX', KEYS[1], prefix .. id, json)
  elseif redis.call('HEXISTS', KEYS[1], prefix .. id) == 0 then
    restored = restored + redis.call('HSETNX', KEYS[1], id, json)
  end
end
redis.call('PUBLISH', ARGV[1], '')
return { again, restored }
`

/**
 * A removable entry Redis lost that lapses sooner than this is not written back: another instance
 * whose clock runs ahead may have deleted it as lapsed, and writing it back would only start a
 * delete-and-restore exchange until this clock catches up. Ending an approval a minute early errs
 * on the safe side.
 */
const RESTORE_MARGIN_MS = 60_000

/** What the owner of a store built on a synced hash may set (each store has its own default key and channel). */
export interface RedisStoreOptions {
  /** The hash: id → JSON. */
  readonly key?: string
  /** The pub/sub channel announcing changes. */
  readonly channel?: string
  /** Full resync period: a safety net for announcements missed while this instance was disconnected. */
  readonly resyncMs?: number
  readonly log: Logger
  readonly now?: () => number
}

export interface SyncedHashOptions<T extends KeyedEntry> extends RedisStoreOptions, EntryRules<T> {
  readonly key: string
  readonly channel: string
  /** The order `current()` lists entries in. */
  readonly order: (a: T, b: T) => number
  /**
   * Set for entries that are only ever added (and lapse by themselves): one this instance knew that
   * Redis no longer holds was lost by Redis (a flush, a restart without persistence, a failover), not
   * removed, so it stays in force and is written back, logged as `restored`. A revocation forgotten
   * that way would let a revoked credential in again.
   */
  readonly addOnly?: boolean
  /**
   * Set for entries that are removed by hand before they lapse (approvals are revoked). A removal
   * moves the entry to the field `<removedPrefix><id>` of the same hash, where it stays until the
   * entry would have lapsed, and every instance remembers each removal it reads as long as that. So
   * Redis can tell "removed" from "lost": a removed entry that is back in Redis (restored from an
   * older copy) is removed again (`removedAgain`); an entry this instance knew that Redis no longer
   * holds, not removed, was lost by Redis and is written back (`restored`), with the removals Redis
   * lost.
   */
  readonly removedPrefix?: string
  /**
   * The operational log lines: Redis readable again (`ok`), Redis unreadable (`failing`), entries
   * written back (`restored`), removed entries removed again (`removedAgain`).
   */
  readonly codes: { readonly ok: Code; readonly failing: Code; readonly restored?: Code; readonly removedAgain?: Code }
  /**
   * What the entries are (`approvals`), what the channel carries (`approval changes`), and what a
   * removal is called (`revoked`), for those lines.
   */
  readonly names: { readonly entries: string; readonly changes: string; readonly removed?: string }
  /**
   * A file on this instance's disk keeping what the store must never forget: with addOnly, every
   * entry; with removedPrefix, every removal. Each one this instance learns (made here, announced,
   * or read at a resync) is added to it, and what it holds is known from start, before Redis is read.
   * So when Redis loses data, any one instance that restarts puts back what every instance saw (and
   * moving between the file and Redis, where the file is what is kept without Redis, loses nothing),
   * not only the one that made the change. It must keep the first entry of an id (keepFirst).
   */
  readonly journal?: Journal<T>
}

/** Where a synced hash keeps what it must not forget (SyncedHashOptions.journal), and how it says it could not. */
export interface Journal<T extends KeyedEntry> {
  readonly store: KeyedStore<T>
  /** Logged (warn, once until a write succeeds) when the file cannot take an entry. */
  readonly failing: Code
}

/**
 * Entries shared by every instance: a Redis hash (id → JSON) plus a pub/sub channel announcing
 * changes. Each instance keeps the whole set in memory (the data path reads it synchronously) and
 * reloads it on every announcement, so a change applies everywhere within a second. Lapsed and
 * unreadable entries are deleted as they are read. While Redis is unreachable the last known set
 * stays in force and writes fail.
 */
export function createSyncedHash<T extends KeyedEntry>(client: RedisClient, opts: SyncedHashOptions<T>): KeyedStore<T> {
  const { key, channel, log, codes, names, removedPrefix } = opts
  const now = opts.now ?? Date.now
  const journal = opts.journal
  const journaled = (journal?.store.current() ?? []).filter((e) => opts.isLive(e, now()))
  // With addOnly, the journal's entries are in force from start, and those Redis lacks are written back.
  let list: readonly T[] = opts.addOnly === true ? [...journaled].sort(opts.order) : []
  let loaded = false
  // Entries removed while this instance ran or that its journal holds (removedPrefix), each until it would have lapsed.
  const removed = new Map<string, T>(removedPrefix !== undefined ? journaled.map((e) => [e.id, e]) : [])
  const listeners: Array<() => void> = []
  // Redis's clock minus this process's, measured at each refresh: write deadlines are set in Redis's clock.
  let clockOffsetMs = 0
  const measureClock = async (): Promise<void> => {
    const before = Date.now()
    const [sec, usec] = await client.time()
    clockOffsetMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - (before + Date.now()) / 2
  }
  const fencedWrite = async (op: 'set' | 'setnx' | 'del', id: string, json = ''): Promise<number> => {
    const deadline = Math.floor(Date.now() + clockOffsetMs + WRITE_DEADLINE_MS)
    const r = Number(
      await client.eval(FENCED_WRITE, 1, key, String(deadline), op, id, json, channel, removedPrefix ?? ''),
    )
    if (r < 0) throw new Error(`Redis ran the write more than ${WRITE_DEADLINE_MS} ms after it was sent; not applied`)
    return r
  }
  const refresh = async (): Promise<void> => {
    await measureClock()
    const all = await client.hgetall(key)
    let next: T[] = []
    const lapsed: string[] = []
    // The removals Redis holds now.
    const marked = new Set<string>()
    for (const [field, json] of Object.entries(all)) {
      // A rule that throws on a shape it did not expect drops that entry like any unreadable one.
      try {
        const v: unknown = JSON.parse(json)
        if (!opts.isEntry(v) || !opts.isLive(v, now())) lapsed.push(field)
        else if (removedPrefix !== undefined && field.startsWith(removedPrefix)) {
          const id = field.slice(removedPrefix.length)
          removed.set(id, v)
          marked.add(id)
        } else next.push(v)
      } catch {
        lapsed.push(field)
      }
    }
    if (lapsed.length > 0) await client.hdel(key, ...lapsed)
    if (removedPrefix !== undefined) next = await keepRemovals(removedPrefix, next, marked)
    if (opts.addOnly === true) {
      const held = new Set(next.map((e) => e.id))
      const lost = list.filter((e) => !held.has(e.id) && opts.isLive(e, now()))
      if (lost.length > 0) {
        const restore = client.multi()
        for (const e of lost) restore.hsetnx(key, e.id, JSON.stringify(e))
        await restore.exec()
        next.push(...lost)
        log.warn(
          { code: codes.restored ?? codes.failing, restored: lost.length },
          `Redis no longer held ${lost.length} ${names.entries} this instance knew; they stay in force and were written back`,
        )
      }
    }
    next.sort(opts.order)
    list = next
    loaded = true
    for (const l of listeners) l()
    await keepInJournal()
  }
  let journalFailing = false
  /** Adds to the journal what this instance knows and it does not hold yet; never throws (Redis has it). */
  const keepInJournal = async (): Promise<void> => {
    if (journal === undefined) return
    const held = new Set(journal.store.current().map((e) => e.id))
    const kept = opts.addOnly === true ? list : [...removed.values()]
    const missing = kept.filter((e) => !held.has(e.id))
    if (missing.length === 0) return
    try {
      for (const e of missing) await journal.store.add(e)
      journalFailing = false
    } catch (err) {
      if (!journalFailing)
        log.warn(
          { code: journal.failing, err: String(err) },
          `${names.entries} this instance knows could not all be kept in its file; Redis holds them`,
        )
      journalFailing = true
    }
  }
  /**
   * Removed entries stay removed and entries Redis lost come back, whatever Redis now holds (a flush,
   * a restart without persistence, a restore of an older copy). Answers the entries in force.
   */
  const keepRemovals = async (prefix: string, read: T[], marked: ReadonlySet<string>): Promise<T[]> => {
    const t = now()
    for (const [id, e] of removed) if (!opts.isLive(e, t)) removed.delete(id)
    const again = read.filter((e) => removed.has(e.id))
    const inForce = read.filter((e) => !removed.has(e.id))
    const held = new Set(read.map((e) => e.id))
    const lost = list.filter((e) => !held.has(e.id) && !removed.has(e.id) && opts.isLive(e, t + RESTORE_MARGIN_MS))
    // Removals Redis lost (an entry back is marked again with its removal).
    const unmarked = [...removed].filter(([id]) => !marked.has(id) && !held.has(id))
    if (again.length + lost.length + unmarked.length === 0) return inForce
    const args: string[] = [channel, prefix]
    for (const e of again) args.push('again', e.id, JSON.stringify(removed.get(e.id)))
    for (const [id, e] of unmarked) args.push('mark', id, JSON.stringify(e))
    for (const e of lost) args.push('restore', e.id, JSON.stringify(e))
    const [deletedAgain, restored] = (await client.eval(REPAIR, 1, key, ...args)) as [number, number]
    const removedName = names.removed ?? 'removed'
    if (deletedAgain > 0)
      log.warn(
        { code: codes.removedAgain ?? codes.failing, removed_again: deletedAgain, ids: again.map((e) => e.id) },
        `Redis held ${deletedAgain} ${names.entries} again that were ${removedName} while this instance ran (restored from an older copy?); they stay ${removedName} and were deleted again`,
      )
    if (restored + unmarked.length > 0)
      log.warn(
        { code: codes.restored ?? codes.failing, restored, removals_restored: unmarked.length },
        `Redis no longer held ${restored} ${names.entries} this instance knew, nor ${unmarked.length} it knew were ${removedName} (a flush, a restart without persistence, a failover): all were written back, and those ${restored} stay in force`,
      )
    return [...inForce, ...lost]
  }
  // Warn once per outage, not at every resync while Redis is away.
  let failing = false
  const safeRefresh = (): void => {
    refresh().then(
      () => {
        if (failing) log.info({ code: codes.ok }, `${names.entries} read from Redis again`)
        failing = false
      },
      (err: unknown) => {
        if (!failing)
          log.warn(
            { code: codes.failing, err: String(err) },
            `could not refresh ${names.entries} from Redis; keeping the last known set`,
          )
        failing = true
      },
    )
  }
  // The two duplicate() signatures (Redis, Cluster) are incompatible as a union; both take no arguments here.
  const sub = (client as Redis).duplicate()
  sub.on('error', () => undefined)
  sub.on('message', (ch: string) => {
    if (ch === channel) safeRefresh()
  })
  // Redis may be down at start or restart later: (re)subscribe and resync whenever the subscriber
  // becomes ready (ioredis also restores the subscription; SUBSCRIBE twice is harmless), and resync
  // when the command connection comes back, in case announcements were missed meanwhile.
  sub.on('ready', () => {
    sub
      .subscribe(channel)
      .then(safeRefresh, (err: unknown) =>
        log.warn(
          { code: codes.failing, err: String(err) },
          `could not subscribe to ${names.changes}; retrying on reconnect`,
        ),
      )
  })
  client.on('ready', safeRefresh)
  if (client.status === 'ready') safeRefresh()
  const timer = setInterval(safeRefresh, opts.resyncMs ?? 5000)
  timer.unref()
  return {
    current: () => list,
    loaded: () => loaded,
    async add(entry) {
      // HSETNX keeps the first entry of an id; HSET replaces it.
      await fencedWrite(opts.keepFirst ? 'setnx' : 'set', entry.id, JSON.stringify(entry))
      await refresh()
    },
    async remove(id) {
      const deleted = await fencedWrite('del', id)
      const entry = list.find((e) => e.id === id)
      if (deleted > 0 && removedPrefix !== undefined && entry !== undefined) removed.set(id, entry)
      await refresh()
      return deleted > 0
    },
    onChange(listener) {
      listeners.push(listener)
    },
    async close() {
      clearInterval(timer)
      client.off('ready', safeRefresh)
      sub.disconnect()
      await journal?.store.close()
    },
  }
}
