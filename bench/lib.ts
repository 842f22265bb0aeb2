/**
 * The bench kit, one import for the runner, its scenarios and bench/focus.ts:
 *
 * - lib/config.ts     the bench agent, its token, the Portcullis config for the bench names
 * - lib/clients.ts    CONNECT tunnels, TLS handshakes, single requests (raw sockets)
 * - lib/processes.ts  origin, Portcullis (1 or N workers), bare proxy, Squid, http-mitm-proxy, redis-server
 * - lib/load.ts       bounded load drivers (an in-process loop, wrk) and interleaved rounds
 * - lib/proc.ts       CPU and RSS from /proc, over a proxy's whole process tree
 * - lib/stats.ts      pure: percentiles, medians, round ratios, wrk output, /proc text
 *
 * The pieces the tests use too come from test/helpers (one helper kit, not copies): free ports
 * (ports.ts), the redis-server start (redis.ts), the raw tunnel client (tunnel.ts) and the config
 * writer (config.ts).
 *
 * Loopback only: every socket dials 127.0.0.1, and every loop stops at a count or a deadline.
 */
export * from './lib/clients.js'
export * from './lib/config.js'
export * from './lib/load.js'
export * from './lib/proc.js'
export * from './lib/processes.js'
export * from './lib/stats.js'
