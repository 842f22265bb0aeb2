import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import type { Bus } from '../telemetry/bus.js'
import type { Forwarder } from './forward.js'
import type { TunnelTracker } from './tracker.js'
import type { Interceptor } from './intercept.js'
import type { ApprovalIndex } from '../policy/approvals.js'
import type { Limiter } from '../limits/limiter.js'
import type { ConnGate } from './conn-gate.js'
import type { DescriptorWatch } from './descriptors.js'
import type { Inspector } from './inspect.js'
import type { SandboxAuth } from '../identity/sandbox-auth.js'
import type { PackageGuard } from './package-gate.js'
import type { BadRequests } from './bad-requests.js'

/** What the proxy edges need from the composition root (app.ts). */
export interface ProxyDeps {
  /** The policy in force now; hot reload swaps what this returns. */
  readonly config: () => RuntimeConfig
  readonly bus: Bus
  readonly log: Logger
  readonly forwarder: Forwarder
  readonly tracker: TunnelTracker
  /** Null until the CA is loaded; CONNECTs that need interception fail closed without it. */
  readonly interceptor: Interceptor | null
  /** Active approvals, indexed by agent; swapped whenever the store changes. */
  readonly approvals: () => ApprovalIndex
  /** Per-agent rate limits; synchronous, local (Redis reconciles in the background). */
  readonly limiter: Limiter
  /** The proxy's own environment: where inject_headers secrets are read, per request (never the sandbox's). */
  readonly env: NodeJS.ProcessEnv
  /** Seconds from request parsed to verdict (identity, policy, limits), for the latency histogram. */
  readonly observeDecision: (seconds: number) => void
  /** What a client costs before it authenticates (per-source connections and denials). */
  readonly gate: ConnGate
  /** Out-of-descriptor episodes (accept and dial): one log line each, and counts. */
  readonly descriptors: DescriptorWatch
  /** inspect_body: bounded scans, a few at a time per agent, off the event loop. */
  readonly inspector: Inspector
  /** Sandbox credentials (SPEC §9): the signing keys, max_sandbox_ttl and revocations in force now. */
  readonly sandboxAuth: () => SandboxAuth
  /** Package rules on registries (SPEC §11): metadata rewritten, tarballs judged, publish times cached. */
  readonly packages: PackageGuard
  /** Requests refused as malformed (400/405/431/505): one log line each (bounded) and counts. */
  readonly badRequests: BadRequests
}
