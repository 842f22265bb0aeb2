import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { rootCertificates } from 'node:tls'
import type { DestinationStream } from 'pino'
import type { RuntimeConfig } from './config/types.js'
import { PortcullisError } from './errors.js'
import { createBus, type Bus } from './telemetry/bus.js'
import { createLoggers, createLogSink, type Loggers } from './telemetry/log-sink.js'
import { createRingSink, type RingSink } from './telemetry/ring-sink.js'
import { createForwarder } from './proxy/forward.js'
import { createProxyServer } from './proxy/server.js'
import { createTunnelTracker } from './proxy/tracker.js'
import type { ProxyDeps } from './proxy/deps.js'
import { createInterceptor, type Interceptor } from './proxy/intercept.js'
import { ensureCa, loadCa } from './tls/ca.js'
import { createLeafCertCache } from './tls/leaf-certs.js'
import { createAdminServer } from './admin/server.js'
import { healthRoutes } from './admin/routes/health.js'
import { loadAdminToken } from './admin/token.js'

export interface AppOptions {
  /** Where log lines go (tests pass a sink; default stdout). */
  readonly logDestination?: DestinationStream
  readonly env?: NodeJS.ProcessEnv
}

export interface ListeningAddresses {
  readonly proxy: AddressInfo
  readonly admin: AddressInfo
}

export interface App {
  readonly bus: Bus
  readonly ring: RingSink
  readonly loggers: Loggers
  config(): RuntimeConfig
  start(): Promise<ListeningAddresses>
  close(): Promise<void>
}

function readUpstreamRoots(caFile: string | null): string[] {
  if (caFile === null) return [...rootCertificates]
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')]
  } catch (cause) {
    throw new PortcullisError('PC_ERR_CA_UNREADABLE', `cannot read upstream.ca_file ${caFile}`, { cause })
  }
}

/** Composition root: builds every component from the RuntimeConfig and wires the sinks. No logic lives here. */
export function createApp(initial: RuntimeConfig, opts: AppOptions = {}): App {
  const env = opts.env ?? process.env
  let current = initial
  const generation = 1
  const loggers = createLoggers(initial.telemetry.log.level, opts.logDestination)
  const bus = createBus((sink, err) => loggers.ops.error({ code: 'PC_ERR_INTERNAL', sink, err }, 'telemetry sink failed'))
  const ring = createRingSink(initial.telemetry.memory.size)
  bus.subscribe(ring)
  bus.subscribe(createLogSink(loggers.records, initial.telemetry.log.format))
  const forwarder = createForwarder({ connectTimeoutMs: initial.upstream.connectTimeoutMs, idleTimeoutMs: initial.upstream.idleTimeoutMs, ca: readUpstreamRoots(initial.upstream.caFile) })
  const tracker = createTunnelTracker()
  let interceptor: Interceptor | null = null
  const deps: ProxyDeps = {
    config: () => current,
    bus,
    log: loggers.ops.child({ component: 'proxy' }),
    forwarder,
    tracker,
    get interceptor() {
      return interceptor
    },
  }
  const proxyServer = createProxyServer(deps)
  const startedAt = new Date().toISOString()
  let adminServer: Server | null = null

  async function listen(server: Server, host: string, port: number, what: string): Promise<AddressInfo> {
    server.listen(port, host)
    try {
      await once(server, 'listening')
    } catch (cause) {
      throw new PortcullisError('PC_ERR_LISTEN', `cannot listen for ${what} on ${host}:${port}`, { cause })
    }
    return server.address() as AddressInfo
  }

  return {
    bus,
    ring,
    loggers,
    config: () => current,
    async start() {
      if (await ensureCa(current.tls.caCert, current.tls.caKey)) loggers.ops.info({ code: 'PC_CA_CREATED', cert: current.tls.caCert }, 'interception CA generated; install its certificate in sandboxes (portcullis ca show)')
      const ca = await loadCa(current.tls.caCert, current.tls.caKey)
      interceptor = createInterceptor(deps, createLeafCertCache(ca))
      const token = await loadAdminToken(env, join(dirname(current.tls.caKey), 'admin-token'))
      if (token.created) loggers.ops.info({ code: 'PC_ADMIN_TOKEN_CREATED', file: token.file }, 'admin token generated; read it from this file')
      adminServer = createAdminServer(
        healthRoutes({ generation: () => generation, configError: () => null, ready: () => proxyServer.listening, startedAt }),
        token.token,
        (err) => loggers.ops.error({ code: 'PC_ERR_INTERNAL', err }, 'admin handler failed'),
      )
      const proxy = await listen(proxyServer, current.listen.host, current.listen.port, 'proxy')
      const admin = await listen(adminServer, current.admin.host, current.admin.port, 'admin')
      loggers.ops.info({ code: 'PC_STARTED', proxy: `${proxy.address}:${proxy.port}`, admin: `${admin.address}:${admin.port}`, generation }, 'portcullis listening')
      return { proxy, admin }
    },
    async close() {
      for (const t of [...tracker.all()]) t.close()
      proxyServer.closeAllConnections()
      const closing = [new Promise<void>((r) => proxyServer.close(() => r()))]
      if (adminServer) {
        adminServer.closeAllConnections()
        const a = adminServer
        closing.push(new Promise<void>((r) => a.close(() => r())))
      }
      forwarder.close()
      interceptor?.close()
      await Promise.all(closing)
      loggers.flush()
      current = initial
    },
  }
}
