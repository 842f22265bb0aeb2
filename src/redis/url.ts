/**
 * Redis URLs, read in one place (SPEC §3 `telemetry.redis.url`): `redis://`, `rediss://` (TLS), or a
 * cluster seed list `redis+cluster://h:p[,h:p]` / `rediss+cluster://…`, each with an optional
 * `user:password@`. The config check (`redisUrlProblem`), the client factory (the cluster seeds)
 * and every log line (`redactRedisUrl`) split a URL the same way. PURE.
 */

/** A URL cut at its scheme and at the last `@`: what every reader below agrees on. */
interface RedisUrlParts {
  /** The scheme, lower-case, without `://` (`rediss+cluster`); null when the text has none. */
  readonly scheme: string | null
  /** `user:password` as written (still percent-encoded); null without `@`. */
  readonly userinfo: string | null
  /** What follows the userinfo: hosts, then any path, query or fragment. */
  readonly rest: string
}

export interface RedisSeed {
  readonly host: string
  readonly port: number
}

/** Where a cluster client connects: its seed nodes, credentials and TLS. */
export interface RedisClusterTarget {
  readonly tls: boolean
  readonly seeds: readonly RedisSeed[]
  readonly username?: string
  readonly password?: string
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i
const REDIS_SCHEME = /^rediss?(\+cluster)?$/
const DEFAULT_PORT = 6379

function splitRedisUrl(url: string): RedisUrlParts {
  const m = SCHEME.exec(url)
  const afterScheme = m ? url.slice(m[0].length) : url
  // The LAST '@': a password may hold an unescaped '@', a host never does.
  const at = afterScheme.lastIndexOf('@')
  return {
    scheme: m ? (m[1] as string).toLowerCase() : null,
    userinfo: at >= 0 ? afterScheme.slice(0, at) : null,
    rest: afterScheme.slice(at + 1),
  }
}

/** The host list of a URL (`h1:1,h2:2`), without path, query or fragment. */
function hostsOf(parts: RedisUrlParts): string {
  return parts.rest.replace(/[/?#].*$/, '')
}

/** Is this a cluster seed list (`redis+cluster://`, `rediss+cluster://`)? */
export function isClusterUrl(url: string): boolean {
  const { scheme } = splitRedisUrl(url)
  return scheme !== null && REDIS_SCHEME.test(scheme) && scheme.endsWith('+cluster')
}

/**
 * Query parameters that carry a credential. ioredis copies every query parameter of a URL into its
 * options (`?password=…` authenticates like `:…@`, and so does `sentinelPassword` for sentinels):
 * any whose name says it is a secret is hidden, whatever the case.
 */
const SECRET_PARAM = /pass|secret|token|auth|cred/i

/** Where secret values of query parameters sit in `url` ([start, end) each); the query from the first `?`. */
function secretParamSpans(url: string): Array<[number, number]> {
  const q = url.indexOf('?')
  if (q < 0) return []
  const hash = url.indexOf('#', q)
  const end = hash < 0 ? url.length : hash
  const spans: Array<[number, number]> = []
  let at = q + 1
  for (const param of url.slice(q + 1, end).split('&')) {
    const eq = param.indexOf('=')
    let name = eq < 0 ? param : param.slice(0, eq)
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '))
    } catch {
      // A name that does not decode is judged as written.
    }
    if (eq >= 0 && SECRET_PARAM.test(name)) spans.push([at + eq + 1, at + param.length])
    at += param.length + 1
  }
  return spans
}

/**
 * The URL with its passwords replaced, in the userinfo and in the query (`?password=…`), safe for
 * logs, /healthz and error messages (a URL with no scheme too). The userinfo is cut at the last `@`
 * and the query at the first `?`, as the readers here and ioredis may; where the two readings
 * overlap (an unescaped `?` or `@` in a secret), everything either would hide is hidden.
 */
export function redactRedisUrl(url: string): string {
  const { scheme, userinfo } = splitRedisUrl(url)
  const spans = secretParamSpans(url)
  if (userinfo !== null) {
    const from = (scheme === null ? 0 : url.indexOf('://') + 3) + userinfo.indexOf(':') + 1
    if (userinfo.includes(':')) spans.push([from, from + userinfo.length - userinfo.indexOf(':') - 1])
  }
  spans.sort((a, b) => a[0] - b[0])
  let out = ''
  let done = 0
  for (const [start, end] of spans) {
    if (end <= done) continue
    out += start >= done ? `${url.slice(done, start)}***` : ''
    done = end
  }
  return out + url.slice(done)
}

/**
 * Why `url` is not a Redis URL, or null when it is one. Checked when the config is compiled, so
 * `portcullis check` refuses a URL the proxy could never connect with (it would otherwise stay
 * "Redis down" for good, on local rate limits).
 */
export function redisUrlProblem(url: string): string | null {
  const parts = splitRedisUrl(url)
  if (parts.scheme === null || !REDIS_SCHEME.test(parts.scheme))
    return `'${redactRedisUrl(url)}' is not a Redis URL: use redis://host:port, rediss://… or redis+cluster://h:p,h:p`
  const cluster = parts.scheme.endsWith('+cluster')
  const hosts = hostsOf(parts)
  const seeds = cluster ? hosts.split(',') : [hosts]
  for (const seed of seeds) {
    if (seed === '' && !cluster && seeds.length === 1) continue // redis:// alone means localhost:6379
    let parsed: URL
    try {
      parsed = new URL(`redis://${seed}`)
    } catch {
      return `'${redactRedisUrl(url)}': '${seed}' is not a host[:port]`
    }
    if (parsed.hostname === '') return `'${redactRedisUrl(url)}': '${seed}' names no host`
  }
  return null
}

/**
 * The seed nodes and credentials of a cluster URL (or of a `redis://` URL used as a cluster seed).
 * Each seed is read by WHATWG URL, so IPv6 brackets and percent-encoded credentials come out right.
 */
export function clusterTarget(url: string): RedisClusterTarget {
  const parts = splitRedisUrl(url)
  const tls = (parts.scheme ?? '').replace(/\+cluster$/, '') === 'rediss'
  const hosts = hostsOf(parts)
    .split(',')
    .filter((h) => h !== '')
  const seeds = hosts.map((h) => {
    const u = new URL(`redis://${h}`)
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || DEFAULT_PORT) }
  })
  const target: { -readonly [K in keyof RedisClusterTarget]: RedisClusterTarget[K] } = { tls, seeds }
  if (parts.userinfo !== null && parts.userinfo !== '') {
    const auth = new URL(`redis://${parts.userinfo}@${hosts[0] ?? `127.0.0.1:${DEFAULT_PORT}`}`)
    if (auth.username) target.username = decodeURIComponent(auth.username)
    if (auth.password) target.password = decodeURIComponent(auth.password)
  }
  return target
}
