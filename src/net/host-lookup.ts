import { LRUCache } from 'lru-cache'

/** A name's addresses, as the system resolver gives them (getaddrinfo: /etc/hosts, then DNS). */
export type SystemLookup = (host: string) => Promise<readonly string[]>

/** A name's addresses, from the cache while they are younger than `ttlMs` (0: always asked again). */
export interface HostLookup {
  (host: string, ttlMs: number): Promise<readonly string[]>
  /** The answer kept for `host` while it is younger than `ttlMs`, without asking; undefined when there is none. */
  kept(host: string, ttlMs: number): readonly string[] | undefined
}

export interface HostLookupOptions {
  readonly lookup: SystemLookup
  /** Names kept at once; the least recently used go first. */
  readonly maxNames: number
  /** A monotonic clock in ms (performance.now): a wall clock set back would keep answers past their TTL. */
  readonly now?: () => number
}

interface Answer {
  readonly addresses: readonly string[]
  readonly at: number
}

/**
 * getaddrinfo per request was the proxy's own DNS traffic, one query per forwarded request and per
 * CONNECT, each on libuv's threadpool (four threads, shared with file writes): with a resolver 20 ms
 * away, no more than 200 requests a second could reach names that are not pinned, whatever the CPU.
 * Squid keeps answers (ipcache), as do nginx and HAProxy; here for `upstream.dns_cache_ttl_ms`, the
 * TTL read on each use so that a reload applies at once (0 keeps nothing). Lookups of a name already
 * under way are shared, not repeated, whatever the TTL. A failure or an empty answer is never kept,
 * and drops the answer kept before it: the next request asks again. What is kept is only
 * what getaddrinfo answered; every address is still checked on each use (resolve.ts), so a kept
 * answer cannot let a private address through.
 */
export function createHostLookup(opts: HostLookupOptions): HostLookup {
  const now = opts.now ?? (() => performance.now())
  const answers = new LRUCache<string, Answer>({ max: opts.maxNames })
  const pending = new Map<string, Promise<readonly string[]>>()
  const kept = (host: string, ttlMs: number): readonly string[] | undefined => {
    const answer = ttlMs > 0 ? answers.get(host) : undefined
    return answer !== undefined && now() - answer.at < ttlMs ? answer.addresses : undefined
  }
  const lookup = (host: string, ttlMs: number): Promise<readonly string[]> => {
    const addresses = kept(host, ttlMs)
    if (addresses !== undefined) return Promise.resolve(addresses)
    let asked = pending.get(host)
    if (asked === undefined) {
      asked = opts.lookup(host).then(
        (addresses) => {
          pending.delete(host)
          // An empty answer replaces what was kept: a reload to a longer TTL must not bring back an old one.
          if (addresses.length > 0) answers.set(host, { addresses, at: now() })
          else answers.delete(host)
          return addresses
        },
        (err: unknown) => {
          pending.delete(host)
          answers.delete(host)
          throw err
        },
      )
      pending.set(host, asked)
    }
    return asked
  }
  return Object.assign(lookup, { kept })
}
