import type { AgentLimits, CompiledAgent, InterceptMode, Mode } from '../policy/types.js'
import type { Cidr } from '../net/host.js'

/**
 * The validated, compiled, frozen configuration every runtime component is
 * built from. config/compile.ts is the single mapping from the snake_case YAML
 * (schema.ts) to these camelCase objects. Relative paths are resolved against
 * the process working directory.
 */
export interface RuntimeConfig {
  /** Absolute path of the file this came from. */
  readonly file: string
  readonly listen: {
    readonly host: string
    readonly port: number
    /** null: derived from the descriptor limit at start. */
    readonly maxConnections: number | null
    readonly maxUnauthenticatedPerSource: number
    readonly unauthenticatedDenialsPerMinute: number
  }
  readonly admin: { readonly host: string; readonly port: number }
  /** Worker processes (runtime/workers.ts); null: `auto`, one per available CPU at start. */
  readonly workers: number | null
  readonly mode: Mode
  readonly tls: {
    readonly caCert: string
    readonly caKey: string
    readonly intercept: InterceptMode
  }
  readonly upstream: {
    readonly ports: readonly number[]
    /** Normalised host → addresses (canonical IP literals), like curl --resolve. */
    readonly resolve: ReadonlyMap<string, readonly string[]>
    readonly allowPrivate: readonly Cidr[]
    readonly caFile: string | null
    readonly connectTimeoutMs: number
    readonly headerTimeoutMs: number
    /** From the first byte of an upstream's answer to the end of its head (a trickled head is cut). */
    readonly responseHeaderTimeoutMs: number
    readonly idleTimeoutMs: number
    /** How long a name's DNS answer is used again; 0 keeps nothing (lookups under way are still shared). */
    readonly dnsCacheTtlMs: number
  }
  readonly telemetry: {
    readonly log: { readonly level: string; readonly format: 'json' | 'ecs' }
    readonly memory: { readonly size: number }
    readonly redis: { readonly url: string | null; readonly stream: string; readonly maxlen: number }
  }
  /** Top-level default limits (agents/groups may override; resolved per agent in CompiledAgent.limits). */
  readonly limits: AgentLimits
  readonly approvals: { readonly file: string; readonly defaultTtlMs: number }
  /** Sandbox credentials (SPEC §9): where the signing keys are read from, and the longest life one may have. */
  readonly identity: {
    readonly signingKeyEnv: string
    readonly previousSigningKeyEnv: string | null
    readonly maxSandboxTtlMs: number
    /** `host:port` issued credentials name (identity.sandbox_proxy); null: the proxy's listener. */
    readonly sandboxProxy: string | null
  }
  /**
   * Policy tests (SPEC §10): `tests_file`, or `<config>.tests.yaml` beside the config (`explicit`
   * false: used only when present); null when `tests_file: null`. Optional for hand-built configs.
   */
  readonly testsFile?: { readonly path: string; readonly explicit: boolean } | null
  /**
   * The `packages.deny_file`s the config names, as written: read with it, so an edit of one reloads
   * it (watched like the config). Optional for hand-built configs.
   */
  readonly denyFiles?: readonly string[]
  readonly policy: import('../policy/compiled.js').CompiledPolicy
}

export type { CompiledAgent }
