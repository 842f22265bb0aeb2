import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { rootCertificates } from 'node:tls'
import type { Redis } from 'ioredis'
import type { DestinationStream } from 'pino'
import { decodeTime } from 'ulid'
import type { RuntimeConfig } from './config/types.js'
import { watchConfig, type ConfigWatcher, type ReloadOutcome } from './config/watch.js'
import { PortcullisError } from './errors.js'
import { createBus, type Bus } from './telemetry/bus.js'
import { createLoggers, createLogSink, type Loggers } from './telemetry/log-sink.js'
import { createRingSink, type RingSink } from './telemetry/ring-sink.js'
import { createDenialFolder } from './telemetry/denial-fold.js'
import type { DecisionRecord } from './telemetry/events.js'
import { createForwarder } from './proxy/forward.js'
import { createProxyServer } from './proxy/server.js'
import { createTunnelTracker, sweepTunnelBytes } from './proxy/tracker.js'
import { createConnGate } from './proxy/conn-gate.js'
import { createDescriptorWatch } from './proxy/descriptors.js'
import { createInspector } from './proxy/inspect.js'
import { readNofile, type FdLimit } from './net/fd-limit.js'
import { closeDisallowed } from './proxy/revalidate.js'
import type { ProxyDeps } from './proxy/deps.js'
import { createInterceptor, type Interceptor } from './proxy/intercept.js'
import { ensureCa, loadCa } from './tls/ca.js'
import { createLeafCertCache } from './tls/leaf-certs.js'
import { createAdminServer, sendJson, type Route } from './admin/server.js'
import { healthRoutes } from './admin/routes/health.js'
import { eventRoutes } from './admin/routes/events.js'
import { explainRoutes } from './admin/routes/explain.js'
import { approvalRoutes } from './admin/routes/approvals.js'
import { pageRoutes } from './admin/routes/page.js'
import { loadAdminToken } from './admin/token.js'
import { indexApprovals, type ApprovalIndex } from './policy/approvals.js'
import { credentialVariables } from './policy/compiled.js'
import { weakTokens } from './identity/weak-tokens.js'
import { isActive, type ApprovalStore } from './approvals/store.js'
import { createFileApprovalStore } from './approvals/file-store.js'
import { createRedisApprovalStore } from './approvals/redis-store.js'
import { createMetrics, type Metrics } from './telemetry/metrics.js'
import {
  createRedisSink,
  findDecisionById,
  readEvents,
  redactRedisUrl,
  type RedisSink,
} from './telemetry/redis-sink.js'
import { metricsRoutes } from './admin/routes/metrics.js'
import { createLimiter } from './limits/limiter.js'
import { attachRedisSync, newInstanceId, type RedisSync } from './limits/redis-sync.js'
import { createRemoteFeed, type RemoteFeed } from './telemetry/redis-tail.js'

export interface AppOptions {
  /** Where log lines go (tests pass a sink; default stdout). */
  readonly logDestination?: DestinationStream
  readonly env?: NodeJS.ProcessEnv
  /** Watch the config file for edits (portcullis start does; most tests do not). */
  readonly watch?: boolean
}

export interface ListeningAddresses {
  readonly proxy: AddressInfo
  readonly admin: AddressInfo
}

export interface App {
  readonly bus: Bus
  readonly ring: RingSink
  readonly loggers: Loggers
  readonly metrics: Metrics
  config(): RuntimeConfig
  generation(): number
  /** Load, validate and swap the policy (SIGHUP, POST /api/reload). */
  reload(trigger: string): Promise<ReloadOutcome>
  start(): Promise<ListeningAddresses>
  /**
   * Stop. With `drainMs`, stop accepting first and give requests and tunnels in flight that long to
   * finish (SIGTERM); then close whatever is left. Without, close everything at once.
   */
  close(opts?: { readonly drainMs?: number }): Promise<void>
}

/** Settings a reload cannot change in a running process (listeners, files and connections made at start). */
export function restartOnlyChanges(a: RuntimeConfig, b: RuntimeConfig): string[] {
  const keys: Array<[string, (c: RuntimeConfig) => unknown]> = [
    ['listen', (c) => [c.listen.host, c.listen.port, c.listen.maxConnections]],
    ['admin', (c) => c.admin],
    ['tls.ca_cert', (c) => c.tls.caCert],
    ['tls.ca_key', (c) => c.tls.caKey],
    ['upstream.ca_file', (c) => c.upstream.caFile],
    [
      'upstream timeouts',
      (c) => [
        c.upstream.connectTimeoutMs,
        c.upstream.headerTimeoutMs,
        c.upstream.responseHeaderTimeoutMs,
        c.upstream.idleTimeoutMs,
      ],
    ],
    ['telemetry.log', (c) => c.telemetry.log],
    ['telemetry.memory', (c) => c.telemetry.memory],
    ['telemetry.redis', (c) => c.telemetry.redis],
    ['approvals.file', (c) => c.approvals.file],
  ]
  return keys.filter(([, get]) => JSON.stringify(get(a)) !== JSON.stringify(get(b))).map(([key]) => key)
}

function readUpstreamRoots(caFile: string | null): string[] {
  if (caFile === null) return [...rootCertificates]
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')]
  } catch (cause) {
    throw new PortcullisError('PC_ERR_CA_UNREADABLE', `cannot read upstream.ca_file ${caFile}`, { cause })
  }
}

/**
 * listen.max_connections, or with `auto` what the descriptor limit allows: a proxied connection holds
 * two (client and upstream), and some are kept for the admin API, Redis, files and the CA.
 */
export function maxConnectionsFor(configured: number | null, nofile: FdLimit): number {
  if (configured !== null) return configured
  if (nofile.soft === null) return 16_384
  return Math.max(16, Math.floor((nofile.soft - 64) / 2))
}

/** Per source, agent and reason, the denials of a second recorded one by one; the rest fold into one (denial-fold.ts). */
const DENIALS_RECORDED_PER_SECOND = 20

/** /healthz warnings: each credential variable the policy reads that the environment does not set. */
function missingCredentials(config: RuntimeConfig, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  for (const [name, rule] of credentialVariables(config.policy))
    if (env[name] === undefined || env[name] === '')
      out.push(
        `${rule}: environment variable ${name} (inject_headers or token_env) is not set; requests that need it are refused`,
      )
  return out
}

/** How long start-up waits for the first rate-limit sync with Redis before listening anyway. */
const FIRST_SYNC_WAIT_MS = 3000

/** Composition root: builds every component from the RuntimeConfig and wires the sinks. No logic lives here. */
export function createApp(initial: RuntimeConfig, opts: AppOptions = {}): App {
  const env = opts.env ?? process.env
  let current = initial
  let generation = 1
  let configError: string | null = null
  let approvalIndex: ApprovalIndex = new Map()
  let store: ApprovalStore | null = null
  let watcher: ConfigWatcher | null = null
  let expiryTimer: NodeJS.Timeout | null = null
  let bytesTimer: NodeJS.Timeout | null = null
  const loggers = createLoggers(initial.telemetry.log.level, opts.logDestination, initial.telemetry.log.format)
  const log = loggers.ops
  const bus = createBus((sink, err) => log.error({ code: 'PC_ERR_INTERNAL', sink, err }, 'telemetry sink failed'))
  const ring = createRingSink(initial.telemetry.memory.size)
  bus.subscribe(ring)
  bus.subscribe(createLogSink(loggers.records, initial.telemetry.log.format))
  const forwarder = createForwarder({
    connectTimeoutMs: initial.upstream.connectTimeoutMs,
    responseHeaderTimeoutMs: initial.upstream.responseHeaderTimeoutMs,
    idleTimeoutMs: initial.upstream.idleTimeoutMs,
    ca: readUpstreamRoots(initial.upstream.caFile),
  })
  const tracker = createTunnelTracker()
  const metrics = createMetrics({
    activeTunnels: () => tracker.size,
    connectionsRefused: () => gate.refused,
    descriptorsExhausted: () => descriptors.counts,
    configGeneration: () => generation,
    sinkFailures: () => bus.sinkFailures,
    knownAgent: (agentId) => current.policy.agents.has(agentId),
    recordsFolded: () => intake.folded,
    ringEvicted: () => ring.evicted,
  })
  // The data path publishes here: metrics count every decision, the record folds floods of one denial.
  const intake = createDenialFolder(bus, metrics.sink, { perSecond: DENIALS_RECORDED_PER_SECOND })
  const limiter = createLimiter()
  const gate = createConnGate(() => ({
    maxUnauthenticatedPerSource: current.listen.maxUnauthenticatedPerSource,
    unauthenticatedDenialsPerMinute: current.listen.unauthenticatedDenialsPerMinute,
  }))
  const nofile = readNofile()
  const descriptors = createDescriptorWatch(log.child({ subsystem: 'proxy' }), nofile)
  const inspector = createInspector({
    onWorkerError: (err) =>
      log.error({ code: 'PC_ERR_INTERNAL', err }, 'an inspect_body worker failed; its scan failed closed'),
  })
  let redisSink: RedisSink | null = null
  let limitSync: RedisSync | null = null
  /** Records other instances made, followed from the Redis stream while a live view is open. */
  let remoteFeed: RemoteFeed | null = null
  let interceptor: Interceptor | null = null
  const deps: ProxyDeps = {
    config: () => current,
    bus: intake,
    log: log.child({ subsystem: 'proxy' }),
    forwarder,
    tracker,
    get interceptor() {
      return interceptor
    },
    approvals: () => approvalIndex,
    limiter,
    env,
    observeDecision: (seconds) => metrics.observeDecisionSeconds(seconds),
    gate,
    descriptors,
    inspector,
  }
  const proxyServer = createProxyServer(deps)
  proxyServer.maxConnections = maxConnectionsFor(initial.listen.maxConnections, nofile)
  const startedAt = new Date().toISOString()
  let adminServer: Server | null = null

  function applyReload(outcome: ReloadOutcome, trigger: string): void {
    if (!outcome.ok) {
      configError = outcome.error
      log.error(
        { code: 'PC_CONFIG_REFUSED', trigger, error: outcome.error, generation },
        'config edit refused; the last good policy stays in force',
      )
      return
    }
    const before = current
    current = outcome.config
    generation += 1
    configError = null
    const closed = closeDisallowed(tracker, current, approvalIndex, Date.now())
    reportMissingCredentials(current)
    log.info({ code: 'PC_CONFIG_RELOADED', trigger, generation, closed_connections: closed }, 'policy reloaded')
    const restartOnly = restartOnlyChanges(before, current)
    if (restartOnly.length > 0)
      log.warn(
        { code: 'PC_CONFIG_RESTART_NEEDED', keys: restartOnly, generation },
        'these settings take effect only after a restart; the running process keeps the old ones',
      )
  }

  /** A credential variable that is not set: requests that need it fail closed; say so at start and on reload. */
  function reportMissingCredentials(config: RuntimeConfig): void {
    for (const [name, rule] of credentialVariables(config.policy))
      if (env[name] === undefined || env[name] === '')
        log.error(
          { code: 'PC_INJECT_SECRET_MISSING', env: name, rule },
          'a credential variable (inject_headers or token_env) is not set: requests that need it are refused',
        )
  }

  function reload(trigger: string): Promise<ReloadOutcome> {
    watcher ??= watchConfig(current.file, env, applyReload)
    return watcher.reload(trigger)
  }

  /** The decision an approval is made from: this instance's ring, else (with Redis) any instance's record in the stream. */
  async function findDecision(requestId: string): Promise<DecisionRecord | null> {
    const snap = ring.snapshot()
    for (let i = snap.length - 1; i >= 0; i--) {
      const r = snap[i]
      if (r && r.event === 'decision' && r.id === requestId) return r
    }
    const sink = redisSink
    if (!sink) return null
    let madeAt: number
    try {
      madeAt = decodeTime(requestId)
    } catch {
      return null
    }
    try {
      return await findDecisionById(sink.client, current.telemetry.redis.stream, requestId, madeAt)
    } catch (err) {
      log.warn({ code: 'PC_APPROVALS_REDIS', reason: String(err) }, 'could not look the request up in the Redis stream')
      return null
    }
  }

  let closing: Promise<void> | null = null
  let cutNow: (() => void) | null = null
  /** One close at a time: a second call ends the drain of the first at once and waits for it. */
  function closeAll(opts: { readonly drainMs?: number } = {}): Promise<void> {
    if (closing !== null) {
      cutNow?.()
      return closing
    }
    closing = closeNow(opts)
    return closing
  }

  async function closeNow(opts: { readonly drainMs?: number }): Promise<void> {
    watcher?.close()
    if (expiryTimer) clearInterval(expiryTimer)
    if (bytesTimer) clearInterval(bytesTimer)
    if (adminServer) {
      adminServer.closeAllConnections()
      const a = adminServer
      if (a.listening) await new Promise<void>((r) => a.close(() => r()))
    }
    // close() stops accepting and resolves once every connection has ended; idle kept-alive ones end now.
    const ended = proxyServer.listening ? new Promise<void>((r) => proxyServer.close(() => r())) : Promise.resolve()
    proxyServer.closeIdleConnections()
    if ((opts.drainMs ?? 0) > 0) {
      // A connection whose last response just went out is idle now: node closes idle ones only when asked.
      const sweep = setInterval(() => proxyServer.closeIdleConnections(), 100)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        ended,
        new Promise<void>((r) => (timer = setTimeout(r, opts.drainMs))),
        new Promise<void>((r) => (cutNow = r)),
      ])
      clearTimeout(timer)
      clearInterval(sweep)
    }
    for (const t of [...tracker.all()]) t.close()
    proxyServer.closeAllConnections()
    await ended
    forwarder.close()
    inspector.close()
    interceptor?.close()
    await limitSync?.stop()
    remoteFeed?.stop()
    await store?.close()
    intake.close()
    await redisSink?.close()
    loggers.flush()
  }

  async function listen(server: Server, host: string, port: number, what: string): Promise<AddressInfo> {
    server.listen(port, host)
    try {
      await once(server, 'listening')
    } catch (cause) {
      throw new PortcullisError('PC_ERR_LISTEN', `cannot listen for ${what} on ${host}:${port}`, { cause })
    }
    return server.address() as AddressInfo
  }

  /**
   * With telemetry.redis.url: records stream to Redis, rate limits are shared
   * and approvals live in Redis. Nothing here waits for Redis to be up: the
   * proxy serves while Redis is down and catches up when it returns. The
   * connection is the sink's, shared by the limit sync and the approval store.
   */
  function connectRedis(url: string): { sink: RedisSink; store: ApprovalStore } {
    const redisLog = log.child({ subsystem: 'redis' })
    const { stream, maxlen } = current.telemetry.redis
    const instance = newInstanceId()
    const sink = createRedisSink({ url, stream, maxlen, log: redisLog, instance })
    bus.subscribe(sink)
    // The two duplicate() signatures (Redis, Cluster) are incompatible as a union; both take no arguments here.
    remoteFeed = createRemoteFeed({
      connect: () => (sink.client as Redis).duplicate(),
      stream,
      self: instance,
      log: redisLog,
    })
    const sync = attachRedisSync(limiter, sink.client, {
      log: redisLog,
      instance,
      rpmOf: (agentId) => current.policy.agents.get(agentId)?.limits.requestsPerMinute ?? null,
    })
    limitSync = sync
    metrics.setSources({
      telemetryBacklog: () => sink.backlog(),
      telemetryDropped: () => sink.dropped(),
      limitsRedisFallback: () => sync.fallback(),
      limitsInstances: () => sync.instances(),
    })
    log.info(
      { code: 'PC_REDIS_CONFIGURED', redis: redactRedisUrl(url), stream },
      'telemetry, rate limits and approvals use Redis',
    )
    return { sink, store: createRedisApprovalStore(sink.client, { log: redisLog }) }
  }

  function adminRoutes(approvalStore: ApprovalStore): Route[] {
    const sink = redisSink
    const stream = current.telemetry.redis.stream
    return [
      ...healthRoutes({
        generation: () => generation,
        configError: () => configError,
        warnings: () => missingCredentials(current, env),
        ready: () => proxyServer.listening,
        startedAt,
      }),
      ...metricsRoutes(metrics),
      ...eventRoutes({
        ring,
        bus,
        remote: remoteFeed,
        redis: sink ? { query: (q) => readEvents(sink.client, stream, q) } : null,
        onStreamDrop: (n) => metrics.countStreamDropped(n),
      }),
      ...explainRoutes(
        () => current,
        () => approvalIndex,
      ),
      ...approvalRoutes({ store: approvalStore, findDecision, bus, defaultTtlMs: current.approvals.defaultTtlMs }),
      {
        method: 'POST',
        path: '/api/reload',
        handler: async (_req, res) => {
          const outcome = await reload('api')
          sendJson(
            res,
            outcome.ok ? 200 : 422,
            outcome.ok ? { ok: true, generation } : { ok: false, generation, error: outcome.error },
          )
        },
      },
      ...pageRoutes(),
    ]
  }

  return {
    bus,
    ring,
    loggers,
    metrics,
    config: () => current,
    generation: () => generation,
    reload,
    async start() {
      if (await ensureCa(current.tls.caCert, current.tls.caKey))
        log.info(
          { code: 'PC_CA_CREATED', cert: current.tls.caCert },
          'interception CA generated; install its certificate in sandboxes (portcullis ca show)',
        )
      const ca = await loadCa(current.tls.caCert, current.tls.caKey)
      reportMissingCredentials(current)
      for (const weak of weakTokens(current.policy))
        log.warn(
          { code: 'PC_WEAK_TOKEN', agent: weak.agent },
          `agent ${weak.agent}'s token is the well-known value '${weak.token}': anyone can use it; make one with portcullis token new`,
        )
      interceptor = createInterceptor(deps, createLeafCertCache(ca))
      const redisUrl = current.telemetry.redis.url
      if (redisUrl !== null) {
        const redis = connectRedis(redisUrl)
        redisSink = redis.sink
        store = redis.store
      } else {
        store = await createFileApprovalStore(current.approvals.file)
      }
      const s = store
      // Rebuilt on every change and whenever an approval lapses; tunnels opened under an approval that is
      // revoked or expires are closed at once, like tunnels a reload disallows.
      const refreshApprovals = (): void => {
        const now = Date.now()
        approvalIndex = indexApprovals(s.current().filter((a) => isActive(a, now)))
        if (tracker.size > 0) closeDisallowed(tracker, current, approvalIndex, Date.now())
      }
      s.onChange(refreshApprovals)
      refreshApprovals()
      expiryTimer = setInterval(() => {
        const now = Date.now()
        for (const list of approvalIndex.values()) {
          if (list.some((a) => !isActive(a, now))) return refreshApprovals()
        }
      }, 500)
      expiryTimer.unref()
      bytesTimer = setInterval(() => {
        for (const c of sweepTunnelBytes(tracker, limiter, (agent) => current.policy.agents.get(agent)?.limits))
          log.info(
            { code: 'PC_TUNNEL_BYTES_EXHAUSTED', agent: c.agent, host: c.host },
            'tunnel closed: the agent used its bytes_per_day',
          )
      }, 1000)
      bytesTimer.unref()
      const token = await loadAdminToken(env, join(dirname(current.tls.caKey), 'admin-token'))
      if (token.created)
        log.info({ code: 'PC_ADMIN_TOKEN_CREATED', file: token.file }, 'admin token generated; read it from this file')
      else if (token.file !== null)
        log.info(
          { code: 'PC_ADMIN_TOKEN_FILE', file: token.file },
          'admin token read from this file (PORTCULLIS_ADMIN_TOKEN is unset)',
        )
      adminServer = createAdminServer(adminRoutes(s), token.token, (err) =>
        log.error({ code: 'PC_ERR_INTERNAL', err }, 'admin handler failed'),
      )
      // With shared limits, take traffic once this instance knows what the others have admitted (its
      // first sync), so it does not start on local limits alone; if Redis does not answer soon, it
      // starts on them and says so (PC_LIMITS_LOCAL_FALLBACK).
      if (limitSync && !(await limitSync.firstSync(FIRST_SYNC_WAIT_MS)))
        log.warn(
          { code: 'PC_LIMITS_NOT_SYNCED' },
          'no rate-limit sync with Redis yet; starting with local limits until it answers',
        )
      let proxy: AddressInfo
      let admin: AddressInfo
      try {
        proxy = await listen(proxyServer, current.listen.host, current.listen.port, 'proxy')
        admin = await listen(adminServer, current.admin.host, current.admin.port, 'admin')
      } catch (err) {
        // Half started is not started: a proxy without its admin API (or the reverse) must not keep running.
        await closeAll()
        throw err
      }
      if (opts.watch) watcher ??= watchConfig(current.file, env, applyReload)
      adminServer.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EMFILE' || err.code === 'ENFILE') descriptors.note('accept')
        else log.error({ code: 'PC_ERR_ACCEPT', err }, 'the admin API failed to accept a connection')
      })
      log.info(
        {
          code: 'PC_STARTED',
          proxy: `${proxy.address}:${proxy.port}`,
          admin: `${admin.address}:${admin.port}`,
          max_connections: proxyServer.maxConnections,
          generation,
        },
        'portcullis listening',
      )
      return { proxy, admin }
    },
    close: closeAll,
  }
}
