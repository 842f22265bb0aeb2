import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import type { Bus } from '../telemetry/bus.js'
import type { Forwarder } from './forward.js'
import type { TunnelTracker } from './tracker.js'

/** What the proxy edges need from the composition root (app.ts). */
export interface ProxyDeps {
  /** The policy in force now; hot reload swaps what this returns. */
  readonly config: () => RuntimeConfig
  readonly bus: Bus
  readonly log: Logger
  readonly forwarder: Forwarder
  readonly tracker: TunnelTracker
}
