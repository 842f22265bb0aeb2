/**
 * What telemetry.redis.url may be (SPEC §3): `redis://`, `rediss://` (TLS), or a cluster seed list
 * `redis+cluster://h:p[,h:p]` / `rediss+cluster://…`, each with optional `user:password@`. Checked
 * when the config is compiled, so `portcullis check` refuses a URL the proxy could never connect
 * with (it would otherwise stay "Redis down" for good, on local rate limits). PURE.
 */
const SCHEME = /^(rediss?)(\+cluster)?:\/\//i

/** Why `url` is not a Redis URL, or null when it is one. */
export function redisUrlProblem(url: string): string | null {
  const m = SCHEME.exec(url)
  if (!m) return `'${redact(url)}' is not a Redis URL: use redis://host:port, rediss://… or redis+cluster://h:p,h:p`
  const rest = url.slice(m[0].length)
  const at = rest.lastIndexOf('@')
  const hosts = rest.slice(at + 1).replace(/[/?#].*$/, '')
  const seeds = m[2] ? hosts.split(',') : [hosts]
  for (const seed of seeds) {
    if (seed === '' && !m[2] && seeds.length === 1) continue // redis:// alone means localhost:6379
    let parsed: URL
    try {
      parsed = new URL(`redis://${seed}`)
    } catch {
      return `'${redact(url)}': '${seed}' is not a host[:port]`
    }
    if (parsed.hostname === '') return `'${redact(url)}': '${seed}' names no host`
  }
  return null
}

function redact(url: string): string {
  return url.replace(/\/\/([^@/]*:)[^@/]*@/, '//$1***@')
}
