/**
 * The Redis side of the limit sync: key names, the two Lua scripts, and their arguments built from
 * named objects. PURE (text and arrays); redis-sync.ts sends them. ARGV positions are declared once
 * (the *_ARGV lists): the builders fill them in that order and the scripts read them by name.
 */

/**
 * Keys of one agent's report. They share the `{agent}` hash tag, so one Cluster slot serves them:
 *   `<prefix>rl:{<agent>}:<epochMinute>`           requests used or held in that minute (EXPIRE 120 s)
 *   `<prefix>rl-reported:{<agent>}:<epochMinute>`  instances that reported the agent this minute
 *   `<prefix>bytes:{<agent>}:<yyyymmdd>`           bytes in that UTC day (EXPIRE 2 days)
 */
export interface LimitSyncKeys {
  readonly requests: string
  readonly previousRequests: string
  readonly reporters: string
  readonly bytes: string
}

export interface LimitSyncArgs {
  /** The reporting instance's id. */
  readonly instance: string
  /** Requests admitted on its own since its last report. */
  readonly requests: number
  /** Tokens held and given back. */
  readonly returned: number
  /** Tokens asked for. */
  readonly want: number
  /** The agent's requests_per_minute (0: unknown or unlimited, nothing is granted). */
  readonly rpm: number
  /** How much of the previous minute still lies within the last 60 s, in thousandths. */
  readonly previousWeightMilli: number
  readonly requestTtlS: number
  /** Bytes moved since the last report. */
  readonly bytes: number
  readonly bytesTtlS: number
  /** Every live instance's id: a placeholder share is counted for each that has not reported the agent. */
  readonly liveInstances: readonly string[]
}

/** The script's answer: tokens granted, and the totals after the report. */
export interface LimitSyncReply {
  readonly granted: number
  /** This minute's requests, every instance. */
  readonly requests: number
  /** Today's bytes, every instance. */
  readonly bytes: number
  /** The previous minute's requests, every instance. */
  readonly previousRequests: number
}

export const MINUTE_TTL_S = 120
export const DAY_TTL_S = 2 * 86_400

export function limitSyncKeys(prefix: string, agentId: string, minute: number, day: number): LimitSyncKeys {
  return {
    requests: `${prefix}rl:{${agentId}}:${minute}`,
    previousRequests: `${prefix}rl:{${agentId}}:${minute - 1}`,
    reporters: `${prefix}rl-reported:{${agentId}}:${minute}`,
    bytes: `${prefix}bytes:{${agentId}}:${day}`,
  }
}

const SYNC_KEYS = ['requests', 'previousRequests', 'reporters', 'bytes'] as const
const SYNC_ARGV = [
  'instance',
  'requests',
  'returned',
  'want',
  'rpm',
  'previousWeightMilli',
  'requestTtlS',
  'bytes',
  'bytesTtlS',
] as const satisfies ReadonlyArray<keyof LimitSyncArgs>

/** `local name = KEYS[i]` / `ARGV[i]` for each declared position; ARGV after them are the live instances. */
function declarations(): string {
  const keys = SYNC_KEYS.map((k, i) => `local ${k}Key = KEYS[${i + 1}]`)
  const argv = SYNC_ARGV.map((a, i) => `local ${a} = ARGV[${i + 1}]`)
  return [...keys, ...argv, `local firstLive = ${SYNC_ARGV.length + 1}`].join('\n')
}

/**
 * Adds what the instance admitted on its own, takes back the tokens it returns, marks it as
 * reported, and reserves the tokens it asks for, no more than left (share.ts `grantOf`).
 * Returns { granted, requests (this minute, after), bytes (today, after), previous minute's requests }.
 */
export const LIMIT_SYNC_SCRIPT = `
${declarations()}
local function touch(key, ttl)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
end
local cur = redis.call('INCRBY', requestsKey, tonumber(requests) - tonumber(returned))
touch(requestsKey, requestTtlS)
redis.call('SADD', reportersKey, instance)
touch(reportersKey, requestTtlS)
local prev = tonumber(redis.call('GET', previousRequestsKey) or '0')
local granted = 0
local rpmN = tonumber(rpm)
local wantN = tonumber(want)
if wantN > 0 and rpmN > 0 then
  local n = math.max(1, #ARGV - firstLive + 1)
  local unreported = 0
  for i = firstLive, #ARGV do
    if redis.call('SISMEMBER', reportersKey, ARGV[i]) == 0 then unreported = unreported + 1 end
  end
  local left = rpmN - cur - math.ceil(prev * tonumber(previousWeightMilli) / 1000) - unreported * math.ceil(rpmN / n)
  if left > 0 then
    granted = math.min(wantN, left)
    cur = redis.call('INCRBY', requestsKey, granted)
  end
end
local bytesN = tonumber(bytes)
if bytesN > 0 then
  bytesN = redis.call('INCRBY', bytesKey, bytesN)
  touch(bytesKey, bytesTtlS)
else
  bytesN = tonumber(redis.call('GET', bytesKey) or '0')
end
return { granted, cur, bytesN, prev }
`

/** The script's KEYS then ARGV, in the order it reads them (for `EVALSHA sha 4 …` / a defined command). */
export function limitSyncCall(keys: LimitSyncKeys, args: LimitSyncArgs): Array<string | number> {
  return [...SYNC_KEYS.map((k) => keys[k]), ...SYNC_ARGV.map((a) => args[a]), ...args.liveInstances]
}

export const LIMIT_SYNC_KEY_COUNT = SYNC_KEYS.length

export function parseLimitSyncReply(v: unknown): LimitSyncReply {
  if (!(Array.isArray(v) && v.length === 4 && v.every((x) => typeof x === 'number')))
    throw new Error('unexpected reply from the limit sync script')
  const [granted, requests, bytes, previousRequests] = v as [number, number, number, number]
  return { granted, requests, bytes, previousRequests }
}

export interface HeartbeatArgs {
  /** The live-instance set: a sorted set scored by Redis TIME. */
  readonly key: string
  readonly instance: string
  /** An instance is alive while it has heartbeaten within this window. */
  readonly windowMs: number
}

/** Records the caller as alive and returns the live instances' ids. TIME is Redis's clock, the same for every instance. */
export const HEARTBEAT_SCRIPT = `
local key = KEYS[1]
local instance = ARGV[1]
local windowMs = ARGV[2]
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', key, now, instance)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(windowMs))
redis.call('PEXPIRE', key, windowMs)
return redis.call('ZRANGE', key, 0, -1)
`

export function heartbeatCall(a: HeartbeatArgs): [string, string, number] {
  return [a.key, a.instance, a.windowMs]
}
