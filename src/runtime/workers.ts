/**
 * `workers: N | auto`: N worker processes (node:cluster), each a full instance of Portcullis on the
 * same listen and admin ports. The primary serves nothing itself: it prepares what the workers share
 * on disk (the CA, the admin token), forks them, replaces one that dies (with backoff), and relays
 * SIGTERM/SIGINT (drain, then cut on a second signal) and SIGHUP (reload) to every worker.
 *
 * Workers share state the way separate instances do (SPEC §7): through Redis. So more than one worker
 * needs `telemetry.redis.url`; without it, rate limits, approvals and revocations would silently become
 * per worker, and start-up refuses (PC_ERR_WORKERS_NEED_REDIS). What stays per worker even with Redis:
 * concurrent_connections, listen.max_connections and the unauthenticated-source caps, and the in-memory
 * ring. /metrics answers for every worker: the primary gathers and adds them up (worker-metrics.ts).
 *
 * Why node:cluster and not SO_REUSEPORT: Node 20 cannot set SO_REUSEPORT on a listener (`reusePort`
 * arrived in Node 22.12). The cluster's default round-robin policy has the primary accept and hand
 * each connection to a worker; NODE_CLUSTER_SCHED_POLICY=none lets the kernel pick instead.
 */
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Logger } from 'pino'
import { loadStartToken } from '../admin/token.js'
import type { RuntimeConfig } from '../config/types.js'
import { PortcullisError } from '../errors.js'
import { raiseNofile } from '../net/fd-limit.js'
import { createLoggers } from '../telemetry/log-sink.js'
import { ensureCa } from '../tls/ca.js'
import { createMetricsGatherer, type MetricsAsk, type PartAnswer } from './worker-metrics.js'

/** A worker that dies after running this long counts as a first failure again (its backoff resets). */
export const STABLE_MS = 30_000
const FIRST_RESTART_MS = 100
const MAX_RESTART_MS = 10_000
/** Past the drain, how long the primary waits for workers to exit before it kills them. */
const EXIT_GRACE_MS = 5000

/** What the primary tells a worker (besides the /metrics messages of worker-metrics.ts). */
export type ToWorker = { readonly portcullis: 'stop'; readonly now: boolean } | { readonly portcullis: 'reload' }
/** What a worker tells the primary: it is listening; or, for /metrics, an ask or its part (worker-metrics.ts). */
export type ToPrimary = { readonly portcullis: 'started' } | MetricsAsk | PartAnswer

/** `workers` as configured (null: auto) → how many processes: auto is the CPUs this process may use. */
export function resolveWorkerCount(configured: number | null, parallelism = availableParallelism()): number {
  return configured ?? Math.max(1, parallelism)
}

/** How many worker processes `start` runs for this config; throws PC_ERR_WORKERS_NEED_REDIS as start refuses (`check` too). */
export function workerCountFor(config: RuntimeConfig): number {
  const count = resolveWorkerCount(config.workers)
  checkWorkerCount(count, config.workers, config.telemetry.redis.url)
  return count
}

/** More than one worker shares limits, approvals and revocations only through Redis: refuse otherwise. */
export function checkWorkerCount(count: number, configured: number | null, redisUrl: string | null): void {
  if (count <= 1 || redisUrl !== null) return
  const asked = configured === null ? `workers: auto (${count} CPUs)` : `workers: ${count}`
  throw new PortcullisError(
    'PC_ERR_WORKERS_NEED_REDIS',
    `${asked} needs telemetry.redis.url (or PORTCULLIS_REDIS_URL): workers share rate limits, approvals and revocations only through Redis; set it, or use workers: 1`,
  )
}

/** Delay before replacing a worker that died, after `failures` deaths in a row: 100 ms, doubling, at most 10 s. */
export function restartDelayMs(failures: number): number {
  return Math.min(MAX_RESTART_MS, FIRST_RESTART_MS * 2 ** Math.max(0, Math.min(failures - 1, 20)))
}

export function isToWorker(m: unknown): m is ToWorker {
  const p = (m as { portcullis?: unknown } | null)?.portcullis
  return (p === 'stop' && typeof (m as { now?: unknown }).now === 'boolean') || p === 'reload'
}

/**
 * `portcullis start`, before an instance is built: in the primary with more than one worker, supervise
 * them until they have all exited and return the exit code; otherwise (one worker, or inside a worker)
 * null, and the caller runs the instance itself.
 */
export async function superviseIfMany(
  config: RuntimeConfig,
  env: NodeJS.ProcessEnv,
  drainMs: number,
): Promise<number | null> {
  if (cluster.isWorker) return null
  const count = workerCountFor(config)
  if (count === 1) return null
  const { ops, flush } = createLoggers(config.telemetry.log.level, undefined, config.telemetry.log.format)
  const log = ops.child({ subsystem: 'workers' })
  try {
    // In round-robin mode the primary accepts every connection, so it needs the descriptors too.
    raiseNofile()
    // Made once here, so that workers starting together do not each make their own.
    if (await ensureCa(config.tls.caCert, config.tls.caKey))
      log.info(
        { code: 'PC_CA_CREATED', cert: config.tls.caCert },
        'interception CA generated; install its certificate in sandboxes (portcullis ca show)',
      )
    await loadStartToken(env, config.tls.caKey, log)
    return await supervise(count, log, drainMs)
  } finally {
    flush()
  }
}

interface Slot {
  worker: Worker | null
  started: boolean
  startedAt: number
  failures: number
  timer: NodeJS.Timeout | null
}

function supervise(count: number, log: Logger, drainMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const slots: Slot[] = Array.from({ length: count }, () => ({
      worker: null,
      started: false,
      startedAt: 0,
      failures: 0,
      timer: null,
    }))
    let up = false
    let stopping = 0
    let failed: PortcullisError | null = null
    let killTimer: NodeJS.Timeout | undefined
    const alive = (): Worker[] => slots.flatMap((s) => (s.worker ? [s.worker] : []))
    const metrics = createMetricsGatherer(() => slots.flatMap((s) => (s.worker && s.started ? [s.worker] : [])))
    const send = (m: ToWorker): void => {
      for (const s of slots) {
        const w = s.worker
        if (!w) continue
        // One still starting has no handler yet: the default action of SIGTERM ends it.
        if (!s.started && m.portcullis === 'stop') w.process.kill('SIGTERM')
        else if (w.isConnected()) w.send(m, (err: Error | null) => void err)
      }
    }
    const finish = (): void => {
      clearTimeout(killTimer)
      for (const sig of SIGNALS) process.off(sig, handlers[sig])
      if (failed) reject(failed)
      else resolve(0)
    }
    const fork = (slot: Slot, replaces: number | null): void => {
      slot.timer = null
      slot.started = false
      const w = cluster.fork()
      slot.worker = w
      w.on('message', (m: ToPrimary | null) => {
        metrics.onMessage(w, m)
        if (m?.portcullis !== 'started' || slot.worker !== w) return
        slot.started = true
        slot.startedAt = Date.now()
        if (stopping > 0) w.send({ portcullis: 'stop', now: stopping > 1 } satisfies ToWorker)
        else if (replaces !== null)
          log.info({ code: 'PC_WORKER_RESTARTED', pid: w.process.pid, replaces }, 'worker replaced and listening')
        else if (!up && slots.every((s) => s.started)) {
          up = true
          const pids = alive().map((x) => x.process.pid)
          log.info({ code: 'PC_WORKERS_STARTED', workers: count, pids }, `${count} workers listening`)
        }
      })
      w.on('exit', (code: number | null, signal: string | null) => onExit(slot, w, code, signal))
    }
    const onExit = (slot: Slot, w: Worker, code: number | null, signal: string | null): void => {
      if (slot.worker !== w) return
      slot.worker = null
      if (stopping === 0 && !up) {
        // A worker that could not start (its own error is on stderr): a single instance would not have started either.
        failed = new PortcullisError(
          'PC_ERR_WORKER_START',
          `a worker exited before it was listening (exit code ${code}, signal ${signal}); its error is above`,
        )
        stopping = 2
        send({ portcullis: 'stop', now: true })
      }
      if (stopping > 0) {
        if (alive().length === 0) finish()
        return
      }
      slot.failures = slot.started && Date.now() - slot.startedAt >= STABLE_MS ? 1 : slot.failures + 1
      const delay = restartDelayMs(slot.failures)
      const pid = w.process.pid ?? null
      log.warn(
        { code: 'PC_WORKER_EXITED', pid, exit_code: code, signal, restart_in_ms: delay },
        'worker exited; replacing it',
      )
      slot.timer = setTimeout(() => fork(slot, pid), delay)
    }
    const stop = (signal: string): void => {
      stopping += 1
      for (const s of slots) if (s.timer) clearTimeout(s.timer)
      if (stopping === 1) {
        log.info({ code: 'PC_STOPPING', signal, drain_ms: drainMs, workers: alive().length }, 'stopping: workers drain')
        killTimer = setTimeout(() => {
          for (const w of alive()) w.process.kill('SIGKILL')
        }, drainMs + EXIT_GRACE_MS)
      } else log.warn({ code: 'PC_STOPPING_NOW', signal }, 'stopping now; connections still open are cut')
      send({ portcullis: 'stop', now: stopping > 1 })
      if (alive().length === 0) finish()
    }
    const handlers: Record<(typeof SIGNALS)[number], () => void> = {
      SIGTERM: () => stop('SIGTERM'),
      SIGINT: () => stop('SIGINT'),
      SIGHUP: () => send({ portcullis: 'reload' }),
    }
    for (const sig of SIGNALS) process.on(sig, handlers[sig])
    for (const slot of slots) fork(slot, null)
  })
}

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const

/**
 * In a worker: obey the primary's relayed signals. A relayed stop that finds the worker already
 * draining (it got the same Ctrl-C or systemd's group signal itself) is not a second signal.
 */
export function followPrimary(h: { readonly stop: (now: boolean) => void; readonly reload: () => void }): void {
  if (!cluster.isWorker) return
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return
    if (m.portcullis === 'reload') h.reload()
    else h.stop(m.now)
  })
}

/** In a worker: tell the primary this worker is listening. */
export function reportListening(): void {
  if (cluster.isWorker) process.send?.({ portcullis: 'started' } satisfies ToPrimary)
}

/**
 * In a worker that has stopped, or failed to start: let go of the primary's channel, or it would keep
 * this process alive; it then exits as one process would, with its own exit code.
 */
export function leavePrimary(): void {
  if (!cluster.isWorker) return
  process.removeAllListeners('message')
  process.channel?.unref()
}
