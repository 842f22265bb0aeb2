import { effectiveMode } from './policy/compiled.js'
import type { DestinationStream } from 'pino'
import type { RuntimeConfig } from './config/types.js'
import type { ReloadOutcome } from './config/watch.js'
import type { Metrics } from './telemetry/metrics.js'
import type { Bus } from './telemetry/bus.js'
import type { Loggers } from './telemetry/log-sink.js'
import type { RingSink } from './telemetry/ring-sink.js'
import { createProxyServer } from './proxy/server.js'
import { closeDisallowed } from './proxy/revalidate.js'
import { startBytesSweep } from './proxy/tracker.js'
import { createPolicyState } from './runtime/policy-state.js'
import { vetPolicyTests } from './runtime/policy-tests.js'
import { createShutdown } from './runtime/shutdown.js'
import { maxConnectionsFor } from './runtime/listen.js'
import { reportPolicyProblems } from './runtime/startup-checks.js'
import { createParts } from './runtime/parts.js'
import { startInstance, type ListeningAddresses, type Started } from './runtime/start.js'

export { restartOnlyChanges } from './runtime/policy-state.js'
export type { ListeningAddresses } from './runtime/start.js'

export interface AppOptions {
  /** Where log lines go (tests pass a sink; default stdout). */
  readonly logDestination?: DestinationStream
  readonly env?: NodeJS.ProcessEnv
  /** Watch the config file for edits (portcullis start does; most tests do not). */
  readonly watch?: boolean
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
  /** Start-up (runtime/start.ts): the CA, Redis or files, the admin API, then both listeners. */
  start(): Promise<ListeningAddresses>
  /** Stop; with `drainMs`, what is in flight gets that long first (runtime/shutdown.ts). */
  close(opts?: { readonly drainMs?: number }): Promise<void>
}

/** Composition root: builds every component from the RuntimeConfig and wires them. No logic lives here. */
export function createApp(initial: RuntimeConfig, opts: AppOptions = {}): App {
  const env = opts.env ?? process.env
  const started: Started = { redis: null, approvals: null, admin: null }
  const approvals = (): ReturnType<NonNullable<Started['approvals']>['index']> =>
    started.approvals?.index() ?? new Map()
  const parts = createParts(initial, env, opts.logDestination, {
    config: () => policy.current(),
    approvals,
    generation: () => policy.generation(),
  })
  const { log, tracker } = parts
  const policy = createPolicyState({
    initial,
    env,
    log,
    // SPEC §10: a reload whose policy tests fail is refused like an invalid edit.
    vet: vetPolicyTests,
    // Its policy tests and its deny files are read with the config: editing one reloads it.
    alsoWatch: (c) => [...(c.testsFile ? [c.testsFile.path] : []), ...(c.denyFiles ?? [])],
    onSwap: (next) => {
      reportPolicyProblems(next, env, log)
      return closeDisallowed(tracker, next, approvals(), Date.now())
    },
  })
  const proxyServer = createProxyServer(parts.deps)
  proxyServer.maxConnections = maxConnectionsFor(initial.listen.maxConnections, parts.nofile)
  // Audit mode blocks nothing: its agents' connections are counted towards bytes_per_day, never closed for it.
  const limitsOf = (agent: string) => {
    const p = policy.current().policy
    return effectiveMode(p, agent) === 'audit' ? undefined : p.agents.get(agent)?.limits
  }
  const stopSweep = startBytesSweep(tracker, parts.limiter, limitsOf, log)
  const close = createShutdown({
    proxy: proxyServer,
    admin: () => started.admin,
    tracker,
    release: async () => {
      policy.close()
      stopSweep()
      started.approvals?.close()
      parts.closeData()
      await started.redis?.stop()
      parts.intake.close()
      await started.redis?.sink.close()
      parts.loggers.flush()
    },
  })
  return {
    bus: parts.bus,
    ring: parts.ring,
    loggers: parts.loggers,
    metrics: parts.metrics,
    config: policy.current,
    generation: policy.generation,
    reload: policy.reload,
    async start() {
      const addresses = await startInstance(parts, policy, proxyServer, started, env, () => close())
      if (opts.watch) policy.watch()
      return addresses
    },
    close,
  }
}
