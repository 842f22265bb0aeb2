import type { Logger } from 'pino'
import type { RuntimeConfig } from '../config/types.js'
import { createConfigLoader, watchConfigFile, type ReloadOutcome } from '../config/watch.js'

/**
 * The policy in force and how it changes: a reload (file edit, SIGHUP, POST /api/reload) loads,
 * validates and compiles the file; an accepted one swaps the config and bumps the generation, a
 * refused one is logged and kept for /healthz while the last good policy stays in force. Loads are
 * serialised. Watching the file is a separate, explicit step (`watch()`): `reload()` never starts it.
 */
export interface PolicyState {
  current(): RuntimeConfig
  generation(): number
  /** The last refused reload, while the file on disk is invalid. */
  configError(): string | null
  /** Settings the config in force changed since start that only a restart applies (PC_CONFIG_RESTART_NEEDED). */
  restartNeeded(): readonly string[]
  reload(trigger: string): Promise<ReloadOutcome>
  /** Reload on every edit of the file (and after editors that replace it). Idempotent. */
  watch(): void
  close(): void
}

export interface PolicyStateOptions {
  readonly initial: RuntimeConfig
  readonly env: NodeJS.ProcessEnv
  readonly log: Logger
  /**
   * Checks a loaded config must pass before it may replace the one in force (e.g. its policy tests);
   * a message refuses it like an invalid edit.
   */
  readonly vet?: (config: RuntimeConfig) => string | null
  /**
   * More files whose edits reload the config (its policy tests file, its deny files), per config: a
   * reload that names another file moves the watch to it.
   */
  readonly alsoWatch?: (config: RuntimeConfig) => readonly string[]
  /** After a swap: close what the new policy no longer allows; returns how many connections were closed. */
  readonly onSwap: (next: RuntimeConfig, before: RuntimeConfig) => number
}

export function createPolicyState(opts: PolicyStateOptions): PolicyState {
  let current = opts.initial
  /** The config last read from the file, in force or refused by its checks. */
  let lastLoaded = opts.initial
  let generation = 1
  let configError: string | null = null
  let restartNeeded: readonly string[] = []
  const { log } = opts
  const apply = (outcome: ReloadOutcome, trigger: string): ReloadOutcome => {
    // Its tests file is watched even when its tests refuse it: fixing them must reload it.
    if (outcome.ok) {
      lastLoaded = outcome.config
      if (stopWatching !== null) watchAlso()
    }
    const vetted = outcome.ok ? opts.vet?.(outcome.config) : null
    const checked: ReloadOutcome = vetted ? { ok: false, error: vetted } : outcome
    if (!checked.ok) {
      configError = checked.error
      log.error(
        { code: 'PC_CONFIG_REFUSED', trigger, error: checked.error, generation },
        'config edit refused; the last good policy stays in force',
      )
      return checked
    }
    const before = current
    current = checked.config
    generation += 1
    configError = null
    const closed = opts.onSwap(current, before)
    log.info({ code: 'PC_CONFIG_RELOADED', trigger, generation, closed_connections: closed }, 'policy reloaded')
    // Against the config the process started with: those settings never changed in it, whatever
    // reloads came between (a second, unrelated edit must not hide a pending restart).
    const restartOnly = restartOnlyChanges(opts.initial, current)
    restartNeeded = restartOnly
    if (restartOnly.length > 0)
      log.warn(
        { code: 'PC_CONFIG_RESTART_NEEDED', keys: restartOnly, generation },
        'these settings take effect only after a restart; the running process keeps the old ones',
      )
    return checked
  }
  const loader = createConfigLoader(opts.initial.file, opts.env, (err) =>
    log.error({ code: 'PC_ERR_INTERNAL', err }, 'the config reader thread failed; the reload was refused'),
  )
  const reload = (trigger: string): Promise<ReloadOutcome> => loader.load().then((o) => apply(o, trigger))
  let stopWatching: (() => void) | null = null
  /** The extra files watched now, each with the function that stops its watch. */
  const also = new Map<string, () => void>()
  const watchAlso = (): void => {
    const wanted = new Set([...(opts.alsoWatch?.(current) ?? []), ...(opts.alsoWatch?.(lastLoaded) ?? [])])
    for (const [file, stop] of also)
      if (!wanted.has(file)) {
        stop()
        also.delete(file)
      }
    for (const file of wanted)
      if (!also.has(file))
        also.set(
          file,
          watchConfigFile(file, () => void reload('file')),
        )
  }
  return {
    current: () => current,
    generation: () => generation,
    configError: () => configError,
    restartNeeded: () => restartNeeded,
    reload,
    watch() {
      if (stopWatching) return
      const stopConfig = watchConfigFile(opts.initial.file, () => void reload('file'))
      stopWatching = () => {
        stopConfig()
        for (const stop of also.values()) stop()
        also.clear()
      }
      // The policy tests file too: fixing a failing test must not need a touch of the config.
      watchAlso()
    },
    close() {
      stopWatching?.()
      loader.close()
    },
  }
}

/**
 * Settings a reload cannot change in a running process (listeners, files and connections made at
 * start). The rest of `listen` (the unauthenticated limits) is read per connection (conn-gate.ts).
 */
export function restartOnlyChanges(a: RuntimeConfig, b: RuntimeConfig): string[] {
  const keys: Array<[string, (c: RuntimeConfig) => unknown]> = [
    ['listen.host', (c) => c.listen.host],
    ['listen.port', (c) => c.listen.port],
    ['listen.max_connections', (c) => c.listen.maxConnections],
    ['admin', (c) => c.admin],
    ['workers', (c) => c.workers],
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
