import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { sandboxFactsOf, sandboxLapse, type SandboxAuth } from '../identity/sandbox-auth.js'
import { readSandboxKeys, type SandboxKeys } from '../identity/sandbox-issue.js'
import type { TunnelTracker } from '../proxy/tracker.js'
import { isKept, type RevocationStore } from '../sandboxes/revocation-store.js'

/** How often open connections are checked against their sandbox credential's expiry. */
const SWEEP_MS = 250

export interface LiveSandboxes {
  /** What the data path checks sandbox credentials against (deps.sandboxAuth). */
  auth(): SandboxAuth
  /** The keys of the config in force (the admin API signs with `signing`). */
  keys(): SandboxKeys
  /** The revocation store, once start-up has opened it; its changes apply at once. */
  attach(store: RevocationStore): void
  /** Close every open connection whose sandbox credential expired, was revoked or lost its key; how many. */
  sweep(): number
  close(): void
}

/** What happened to a credential, for the log line of a connection closed for it. */
const LAPSED: Record<NonNullable<ReturnType<typeof sandboxLapse>>, string> = {
  expired: 'is expired',
  revoked: 'is revoked',
  key_retired: 'lost its signing key',
  ttl_exceeds_max: 'lives longer than identity.max_sandbox_ttl now allows',
}

/**
 * Sandbox credentials as they stand now: keys read from the environment per config (a reload that
 * renames the variables takes effect), the revocation set rebuilt on every change of the store (a
 * revocation on another instance arrives by pub/sub), and a sweep that closes open tunnels and
 * intercepted connections within SWEEP_MS of their credential's expiry and at once on revocation.
 */
export function createLiveSandboxes(
  config: () => RuntimeConfig,
  env: NodeJS.ProcessEnv,
  tracker: TunnelTracker,
  log: Logger,
): LiveSandboxes {
  let revoked: ReadonlySet<string> = new Set()
  let store: RevocationStore | null = null
  let cached: { config: RuntimeConfig; keys: SandboxKeys; auth: SandboxAuth } | null = null
  const current = (): { keys: SandboxKeys; auth: SandboxAuth } => {
    const cfg = config()
    if (cached?.config !== cfg) {
      const keys = readSandboxKeys(cfg.identity, env)
      const auth: SandboxAuth = {
        keys: keys.verifying,
        maxTtlMs: cfg.identity.maxSandboxTtlMs,
        isRevoked: (id) => revoked.has(id),
        revocationsKnown: () => store?.loaded() === true,
      }
      cached = { config: cfg, keys, auth }
    }
    return cached
  }
  const sweep = (): number => {
    if (tracker.size === 0) return 0
    const auth = current().auth
    const now = Date.now()
    let closed = 0
    for (const conn of [...tracker.all()]) {
      if (conn.credential.kind !== 'sandbox') continue
      const lapse = sandboxLapse(conn.credential, auth, now)
      if (lapse === null) continue
      conn.close()
      closed++
      log.info(
        { code: 'PC_SANDBOX_CLOSED', agent: conn.agent, sandbox: sandboxFactsOf(conn.credential)?.sandbox, why: lapse },
        `connection closed: its sandbox credential ${LAPSED[lapse]}`,
      )
    }
    return closed
  }
  const rebuild = (): void => {
    const now = Date.now()
    revoked = new Set((store?.current() ?? []).filter((r) => isKept(r, now)).map((r) => r.id))
    sweep()
  }
  const timer = setInterval(sweep, SWEEP_MS)
  timer.unref()
  return {
    auth: () => current().auth,
    keys: () => current().keys,
    attach(s) {
      store = s
      s.onChange(rebuild)
      rebuild()
    },
    sweep,
    close: () => clearInterval(timer),
  }
}
