/**
 * Every PC_* code Portcullis writes, in one table: the thrown ones (PC_ERR_*, start-up and CLI faults)
 * and the operational log lines (`code` in pino lines that are not records). docs/codes.md lists them
 * with the same meanings; a unit test checks that every code in the source is here and in the doc.
 */
export const CODES = {
  // Thrown (PortcullisError), printed by the CLI with its exit code.
  PC_ERR_CONFIG_INVALID: {
    level: 'error',
    meaning: 'the config file fails validation; every problem at file:line:col',
  },
  PC_ERR_CONFIG_UNREADABLE: { level: 'error', meaning: 'the config (or approvals) file cannot be read' },
  PC_ERR_CA_UNREADABLE: { level: 'error', meaning: 'the CA (or upstream.ca_file) cannot be read or written' },
  PC_ERR_LISTEN: { level: 'error', meaning: 'a listener (proxy or admin) cannot bind its address' },
  PC_ERR_ADMIN_REQUEST: { level: 'error', meaning: 'the admin API refused or failed a CLI request' },
  PC_ERR_ADMIN_TOKEN: {
    level: 'error',
    meaning: 'the admin token holds a space or control character: no Bearer header can carry it (start refused)',
  },
  PC_ERR_USAGE: { level: 'error', meaning: 'a CLI command was given arguments it cannot use' },
  PC_ERR_INTERNAL: { level: 'error', meaning: 'a bug: a handler threw; that connection was closed (fail closed)' },
  PC_ERR_ACCEPT: { level: 'error', meaning: 'accepting a connection failed for a reason other than descriptors' },
  PC_ERR_POLICY_TESTS: {
    level: 'error',
    meaning: 'the policy tests (tests_file) fail or cannot be read: start refused (a reload is refused the same way)',
  },
  PC_ERR_RECORDS_UNREADABLE: {
    level: 'error',
    meaning: 'suggest/replay could not read their records (log file, Redis stream)',
  },
  PC_ERR_WORKERS_NEED_REDIS: {
    level: 'error',
    meaning: 'workers > 1 without telemetry.redis.url: limits, approvals and revocations would not be shared',
  },
  PC_ERR_STORE_WRITE: {
    level: 'error',
    meaning:
      'approvals.file (or the sandbox revocations file beside it) cannot be written: the change was not made (503)',
  },
  PC_ERR_WORKER_START: { level: 'error', meaning: 'a worker exited before it was listening; the others were stopped' },
  // Life cycle.
  PC_STARTED: { level: 'info', meaning: 'listening: the proxy and admin addresses, max_connections' },
  PC_FD_LIMIT: { level: 'info', meaning: 'the open-file limit at start (soft raised to hard, or why not)' },
  PC_STOPPING: { level: 'info', meaning: 'SIGTERM/SIGINT: no new connections; what is in flight may finish' },
  PC_STOPPING_NOW: { level: 'warn', meaning: 'a second signal: connections still open are cut' },
  PC_WORKERS_STARTED: { level: 'info', meaning: 'workers > 1: every worker is listening (their pids)' },
  PC_WORKER_EXITED: {
    level: 'warn',
    meaning: 'a worker died; it is replaced after a backoff (100 ms doubling to 10 s)',
  },
  PC_WORKER_RESTARTED: { level: 'info', meaning: 'the replacement for a worker that died is listening' },
  PC_CA_CREATED: { level: 'info', meaning: 'the interception CA was generated (first start)' },
  PC_NO_AGENTS: { level: 'warn', meaning: 'the policy has no agents: every request is refused (407)' },
  PC_SOURCE_OVERLAP: {
    level: 'warn',
    meaning: 'two agents match some of the same source addresses: the first in config order is used there',
  },
  PC_SANDBOX_PROXY_GUESSED: {
    level: 'warn',
    meaning:
      'sandbox templates, listen.host a wildcard address and identity.sandbox_proxy not set: issued credentials name loopback as the proxy',
  },
  PC_NEEDS_INTERCEPTION: {
    level: 'warn',
    meaning:
      'a rule needs interception (methods, paths, inspect_body, inject_headers) but tls.intercept is never: HTTPS requests it governs are refused',
  },
  PC_CA_EXPIRES_SOON: {
    level: 'warn',
    meaning: 'the interception CA ends within 30 days (leaves end with it): give agents its successor',
  },
  PC_CA_KEY_READABLE: {
    level: 'warn',
    meaning: 'the CA key file is readable by group or others (anyone who reads it can mint trusted certificates)',
  },
  PC_ADMIN_TOKEN_CREATED: { level: 'info', meaning: 'the admin token was generated into certs/admin-token' },
  PC_ADMIN_TOKEN_FILE: {
    level: 'info',
    meaning: 'the admin token was read from its file (PORTCULLIS_ADMIN_TOKEN unset)',
  },
  // Policy.
  PC_CONFIG_RELOADED: { level: 'info', meaning: 'a reload was accepted; connections it disallows were closed' },
  PC_CONFIG_REFUSED: { level: 'error', meaning: 'a reload was refused; the last good policy stays in force' },
  PC_CONFIG_RESTART_NEEDED: { level: 'warn', meaning: 'a reload changed settings that apply only after a restart' },
  PC_INJECT_SECRET_MISSING: {
    level: 'error',
    meaning: 'an inject_headers/token_env variable is not set; its requests fail closed',
  },
  PC_WEAK_TOKEN: { level: 'warn', meaning: "an agent's token is a well-known value" },
  PC_WEAK_ADMIN_TOKEN: {
    level: 'warn',
    meaning: 'PORTCULLIS_ADMIN_TOKEN is a well-known value or shorter than 16 characters',
  },
  PC_UPSTREAM_TLS_VERIFY: {
    level: 'warn',
    meaning:
      "an upstream server's certificate failed verification (502 tls_verify): host, port, node's code and message",
  },
  PC_UNINSPECTABLE: { level: 'info', meaning: 'inspect_body could not read a body within its caps (refused)' },
  PC_BAD_REQUEST: {
    level: 'info',
    meaning:
      'a malformed or smuggling-shaped request was refused (400/405/431/505): source, listener (proxy or tunnel), detail word; never header values (at most 20 lines a second, the rest counted as suppressed)',
  },
  // Capacity.
  PC_MAX_CONNECTIONS: {
    level: 'warn',
    meaning: 'listen.max_connections are open; new ones are refused (one line per episode)',
  },
  PC_OUT_OF_DESCRIPTORS: { level: 'error', meaning: 'the process ran out of file descriptors (one line per episode)' },
  PC_TUNNEL_BYTES_EXHAUSTED: { level: 'info', meaning: 'a tunnel was closed: its agent used its bytes_per_day' },
  // Redis.
  PC_REDIS_CONFIGURED: { level: 'info', meaning: 'telemetry, rate limits and approvals use Redis' },
  PC_REDIS_UP: { level: 'info', meaning: 'Redis is reachable again; buffered records are being sent' },
  PC_REDIS_DOWN: { level: 'warn', meaning: 'Redis is unreachable; records wait in a bounded buffer' },
  PC_REDIS_WRITE_FAILED: { level: 'warn', meaning: 'a batch of records could not be written; it is retried' },
  PC_REDIS_TAIL_RETRY: { level: 'warn', meaning: "following other instances' records failed; retrying" },
  PC_TELEMETRY_DROPPING: { level: 'warn', meaning: 'the Redis buffer is full; records are dropped and counted' },
  PC_TELEMETRY_DROPPED: {
    level: 'warn',
    meaning: 'the Redis buffer drained after being full; says how many records were dropped',
  },
  PC_TELEMETRY_UNSENT: {
    level: 'warn',
    meaning: 'records still buffered for Redis at shutdown were dropped (counted)',
  },
  PC_LIMITS_SHARED: { level: 'info', meaning: 'rate limits are shared through Redis' },
  PC_LIMITS_LOCAL_FALLBACK: {
    level: 'warn',
    meaning: 'Redis unreachable: rate limits fall back to per-instance limits',
  },
  PC_LIMITS_NOT_SYNCED: { level: 'warn', meaning: 'started before the first rate-limit sync with Redis' },
  PC_APPROVALS_REDIS: { level: 'warn', meaning: 'approvals in Redis could not be read or a request looked up' },
  PC_APPROVALS_REDIS_OK: { level: 'info', meaning: 'approvals in Redis are readable again' },
  PC_APPROVALS_RESTORED: {
    level: 'warn',
    meaning:
      'Redis no longer held approvals (or revocations of approvals) this instance knew (a flush, a restart without persistence, a failover): those not revoked stay in force, and all were written back',
  },
  PC_APPROVALS_REVOKED_AGAIN: {
    level: 'warn',
    meaning:
      'Redis held approvals again that were revoked while this instance ran (restored from an older snapshot): they stay revoked and were deleted again',
  },
  PC_APPROVALS_REVOCATIONS_FILE: {
    level: 'warn',
    meaning:
      'with Redis, the approval revocations file could not be read or written: Redis and the running instances alone hold the revocations they have',
  },
  // Sandbox credentials (SPEC §9).
  PC_SANDBOX_KEY_UNUSABLE: {
    level: 'error',
    meaning: 'a sandbox signing key variable is unset or unusable; credentials it would check are refused',
  },
  PC_SANDBOX_ISSUED: { level: 'info', meaning: 'the admin API issued a sandbox credential (never the token)' },
  PC_SANDBOX_REVOKED: { level: 'info', meaning: 'a sandbox credential was revoked; its connections close' },
  PC_SANDBOX_CLOSED: {
    level: 'info',
    meaning: 'an open connection closed: its sandbox credential expired, was revoked or lost its key',
  },
  PC_SANDBOX_REVOCATIONS_REDIS: {
    level: 'warn',
    meaning: 'sandbox revocations in Redis could not be read; the last known set stays in force',
  },
  PC_SANDBOX_REVOCATIONS_OK: { level: 'info', meaning: 'sandbox revocations in Redis are readable again' },
  PC_SANDBOX_REVOCATIONS_RESTORED: {
    level: 'warn',
    meaning:
      'Redis no longer held sandbox revocations this instance knew or kept in its file (a flush, a restart without persistence, a failover, moving from the file to Redis): they stay in force and were written back',
  },
  PC_SANDBOX_REVOCATIONS_FILE: {
    level: 'warn',
    meaning:
      'with Redis, the sandbox revocations file could not be read or written: Redis alone holds the revocations it has',
  },
} as const satisfies Record<string, { readonly level: 'info' | 'warn' | 'error'; readonly meaning: string }>

export type Code = keyof typeof CODES
/** The codes a PortcullisError carries. */
export type ErrorCode = Extract<Code, `PC_ERR_${string}`>
