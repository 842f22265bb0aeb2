import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { rootCertificates } from 'node:tls'
import type { DestinationStream, Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { PortcullisError } from '../errors.js'
import { createLimiter, type Limiter } from '../limits/limiter.js'
import { readNofile, type FdLimit } from '../net/fd-limit.js'
import type { ApprovalIndex } from '../policy/approvals.js'
import { createConnGate } from '../proxy/conn-gate.js'
import type { ProxyDeps } from '../proxy/deps.js'
import { createDescriptorWatch, type DescriptorWatch } from '../proxy/descriptors.js'
import { createBadRequests } from '../proxy/bad-requests.js'
import { createForwarder } from '../proxy/forward.js'
import { createInspector } from '../proxy/inspect.js'
import { createPackageGuard } from '../proxy/package-gate.js'
import type { Interceptor } from '../proxy/intercept.js'
import { createTunnelTracker, type TunnelTracker } from '../proxy/tracker.js'
import { createLiveSandboxes, type LiveSandboxes } from './live-sandboxes.js'
import { createBus, type Bus } from '../telemetry/bus.js'
import { createDenialFolder, type DenialFolder } from '../telemetry/denial-fold.js'
import { createLoggers, createLogSink, type Loggers } from '../telemetry/log-sink.js'
import { createMetrics, type Metrics } from '../telemetry/metrics.js'
import { createRingSink, type RingSink } from '../telemetry/ring-sink.js'

/** Per source, agent and reason, the denials of a second recorded one by one; the rest fold into one (denial-fold.ts). */
const DENIALS_RECORDED_PER_SECOND = 20

/** The components of one instance that exist from creation on, and the data path's dependencies. */
export interface Parts {
  readonly loggers: Loggers
  readonly log: Logger
  /** What is recorded: the ring, the log, Redis and the live views subscribe here. */
  readonly bus: Bus
  /** What the data path publishes to: metrics count everything, floods of one denial are folded. */
  readonly intake: DenialFolder
  readonly ring: RingSink
  readonly metrics: Metrics
  readonly tracker: TunnelTracker
  readonly limiter: Limiter
  readonly descriptors: DescriptorWatch
  readonly nofile: FdLimit
  /** Sandbox credentials (SPEC §9): keys, revocations, and the sweep that closes lapsed connections. */
  readonly sandboxes: LiveSandboxes
  readonly deps: ProxyDeps
  /** The CA is loaded at start: interception is wired in then. */
  setInterceptor(interceptor: Interceptor): void
  /** An 'error' listener for a server after listen: an accept error must not end the process. */
  watchAcceptErrors(server: Server): void
  /** Close the upstream pools, scan workers and interception (after every connection has ended). */
  closeData(): void
}

/** What the parts read from the instance as it runs (policy in force, approvals, generation). */
export interface LiveState {
  readonly config: () => RuntimeConfig
  readonly approvals: () => ApprovalIndex
  readonly generation: () => number
}

export function createParts(
  initial: RuntimeConfig,
  env: NodeJS.ProcessEnv,
  destination: DestinationStream | undefined,
  live: LiveState,
): Parts {
  const loggers = createLoggers(initial.telemetry.log.level, destination, initial.telemetry.log.format)
  const log = loggers.ops
  const bus = createBus((sink, err) => log.error({ code: 'PC_ERR_INTERNAL', sink, err }, 'telemetry sink failed'))
  const ring = createRingSink(initial.telemetry.memory.size)
  bus.subscribe(ring)
  bus.subscribe(createLogSink(loggers.records, initial.telemetry.log.format))
  const tracker = createTunnelTracker()
  const gate = createConnGate(() => ({
    maxUnauthenticatedPerSource: live.config().listen.maxUnauthenticatedPerSource,
    unauthenticatedDenialsPerMinute: live.config().listen.unauthenticatedDenialsPerMinute,
  }))
  const nofile = readNofile()
  const proxyLog = log.child({ subsystem: 'proxy' })
  const descriptors = createDescriptorWatch(proxyLog, nofile)
  const badRequests = createBadRequests(proxyLog)
  const metrics = createMetrics({
    activeTunnels: () => tracker.connections,
    connectionsRefused: () => gate.refused,
    descriptorsExhausted: () => descriptors.counts,
    badRequests: () => badRequests.counts,
    configGeneration: live.generation,
    sinkFailures: () => bus.sinkFailures,
    knownAgent: (agentId) => live.config().policy.agents.has(agentId),
    recordsFolded: () => intake.folded,
    ringEvicted: () => ring.evicted,
  })
  const intake = createDenialFolder(bus, metrics.sink, { perSecond: DENIALS_RECORDED_PER_SECOND })
  const forwarder = createForwarder({
    connectTimeoutMs: initial.upstream.connectTimeoutMs,
    responseHeaderTimeoutMs: initial.upstream.responseHeaderTimeoutMs,
    idleTimeoutMs: initial.upstream.idleTimeoutMs,
    ca: readUpstreamRoots(initial.upstream.caFile),
    log,
  })
  const inspector = createInspector({
    onWorkerError: (err) =>
      log.error({ code: 'PC_ERR_INTERNAL', err }, 'an inspect_body worker failed; its scan failed closed'),
  })
  const packages = createPackageGuard(forwarder, (err) =>
    log.error({ code: 'PC_ERR_INTERNAL', err }, 'a package-metadata worker failed; its rewrite failed closed'),
  )
  const limiter = createLimiter()
  const sandboxes = createLiveSandboxes(live.config, env, tracker, proxyLog)
  let interceptor: Interceptor | null = null
  const deps: ProxyDeps = {
    config: live.config,
    bus: intake,
    log: proxyLog,
    forwarder,
    tracker,
    get interceptor() {
      return interceptor
    },
    approvals: live.approvals,
    limiter,
    env,
    observeDecision: (seconds) => metrics.observeDecisionSeconds(seconds),
    gate,
    descriptors,
    inspector,
    packages,
    sandboxAuth: sandboxes.auth,
    badRequests,
  }
  return {
    loggers,
    log,
    bus,
    intake,
    ring,
    metrics,
    tracker,
    limiter,
    descriptors,
    nofile,
    sandboxes,
    deps,
    setInterceptor: (i) => void (interceptor = i),
    watchAcceptErrors(server) {
      server.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EMFILE' || err.code === 'ENFILE') descriptors.note('accept')
        else log.error({ code: 'PC_ERR_ACCEPT', err }, 'accepting a connection failed')
      })
    },
    closeData() {
      forwarder.close()
      inspector.close()
      packages.close()
      sandboxes.close()
      interceptor?.close()
    },
  }
}

function readUpstreamRoots(caFile: string | null): string[] {
  if (caFile === null) return [...rootCertificates]
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')]
  } catch (cause) {
    throw new PortcullisError('PC_ERR_CA_UNREADABLE', `cannot read upstream.ca_file ${caFile}`, { cause })
  }
}
