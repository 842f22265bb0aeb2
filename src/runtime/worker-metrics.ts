/**
 * `/metrics` with `workers: N` answers for the whole instance, not for the worker that took the
 * scrape: one worker's counters alone went backwards from one scrape to the next, which Prometheus
 * reads as resets. The worker asks the primary; the primary asks every listening worker for its
 * registry (as JSON) and adds them up with prom-client's AggregatorRegistry: counters and histograms
 * summed, each gauge by its own `aggregator`. Bounded: a scrape that cannot have every worker's part in
 * time fails (503), never answers with some workers' numbers.
 */
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { MetricsSource } from '../admin/routes/metrics.js'

/** How long the primary waits for every worker's part. */
const GATHER_TIMEOUT_MS = 2000
/** How long a worker waits for the primary's answer (longer: the primary's own reason comes first). */
const ASK_TIMEOUT_MS = 3000

/** Worker to primary: the instance's metrics, please. */
export interface MetricsAsk {
  readonly portcullis: 'metrics'
  readonly id: number
}
/** Primary to worker: the instance's metrics as text, or why there are none. */
export interface MetricsAnswer {
  readonly portcullis: 'metrics'
  readonly id: number
  readonly text: string | null
  readonly error: string | null
}
/** Primary to worker: this worker's registry, please. */
export interface PartAsk {
  readonly portcullis: 'metrics-part'
  readonly id: number
}
/** Worker to primary: its registry, as `getMetricsAsJSON()` gives it. */
export interface PartAnswer {
  readonly portcullis: 'metrics-part'
  readonly id: number
  readonly metrics: readonly object[]
}

const isMessage = <T extends { portcullis: string; id: number }>(m: unknown, kind: T['portcullis']): m is T => {
  const o = m as { portcullis?: unknown; id?: unknown } | null
  return o?.portcullis === kind && typeof o.id === 'number'
}

interface Gathering {
  readonly parts: Array<readonly object[]>
  /** Workers whose part has not come yet. */
  readonly waiting: Set<Worker>
  /** Answer the asking worker (once) and forget the gathering. */
  readonly answer: (text: string | null, error: string | null) => void
}

/**
 * In the primary: answers workers' asks for the instance's metrics. Feed it every message a worker
 * sends (`onMessage`); `listening` lists the workers that have said they listen (one still starting
 * cannot answer yet).
 */
export function createMetricsGatherer(
  listening: () => readonly Worker[],
  timeoutMs = GATHER_TIMEOUT_MS,
): { onMessage(from: Worker, m: unknown): void } {
  const gatherings = new Map<number, Gathering>()
  let nextId = 0

  function gather(from: Worker, ask: MetricsAsk): void {
    const id = nextId++
    const workers = listening()
    const timer = setTimeout(() => {
      const late = gatherings.get(id)?.waiting.size ?? 0
      answer(null, `${late} of ${workers.length} workers did not give their metrics within ${timeoutMs} ms`)
    }, timeoutMs)
    timer.unref()
    function answer(text: string | null, error: string | null): void {
      if (!gatherings.delete(id)) return
      clearTimeout(timer)
      const m: MetricsAnswer = { portcullis: 'metrics', id: ask.id, text, error }
      if (from.isConnected()) from.send(m, (err: Error | null) => void err)
    }
    gatherings.set(id, { parts: [], waiting: new Set(workers), answer })
    if (workers.length === 0) return answer(null, 'no worker is listening')
    for (const w of workers)
      w.send({ portcullis: 'metrics-part', id } satisfies PartAsk, (err: Error | null) => void err)
  }

  function addPart(from: Worker, part: PartAnswer): void {
    const g = gatherings.get(part.id)
    if (!g || !g.waiting.delete(from)) return
    g.parts.push(part.metrics)
    if (g.waiting.size > 0) return
    AggregatorRegistry.aggregate(g.parts)
      .metrics()
      .then(
        (text) => g.answer(text, null),
        (err: unknown) => g.answer(null, err instanceof Error ? err.message : String(err)),
      )
  }

  return {
    onMessage(from, m) {
      if (isMessage<MetricsAsk>(m, 'metrics')) gather(from, m)
      else if (isMessage<PartAnswer>(m, 'metrics-part')) addPart(from, m)
    },
  }
}

/**
 * In a worker: the instance's metrics, asked of the primary (rejects when it cannot answer in time);
 * and this worker's part, given whenever the primary asks. Made before the worker reports listening.
 */
export function workerMetrics(registry: Registry, timeoutMs = ASK_TIMEOUT_MS): MetricsSource {
  const asks = new Map<number, (a: MetricsAnswer | null) => void>()
  let nextId = 0
  // A channel closed meanwhile (the worker is stopping) is not an error worth a crash: the ask times out.
  const send = (m: MetricsAsk | PartAnswer): boolean =>
    process.connected && process.send !== undefined && process.send(m, undefined, undefined, (err) => void err)
  process.on('message', (m: unknown) => {
    if (isMessage<PartAsk>(m, 'metrics-part'))
      // A part that cannot be read is not sent: the primary's gathering times out and says so.
      registry.getMetricsAsJSON().then(
        (metrics) => send({ portcullis: 'metrics-part', id: m.id, metrics }),
        () => undefined,
      )
    else if (isMessage<MetricsAnswer>(m, 'metrics')) asks.get(m.id)?.(m)
  })
  return {
    contentType: registry.contentType,
    text: () =>
      new Promise<string>((resolve, reject) => {
        const id = nextId++
        const timer = setTimeout(() => settle(null), timeoutMs)
        timer.unref()
        function settle(a: MetricsAnswer | null): void {
          clearTimeout(timer)
          asks.delete(id)
          if (a !== null && a.text !== null) resolve(a.text)
          else reject(new Error(a?.error ?? `the primary did not answer within ${timeoutMs} ms`))
        }
        asks.set(id, settle)
        if (!process.connected) settle({ portcullis: 'metrics', id, text: null, error: 'no channel to the primary' })
        else send({ portcullis: 'metrics', id })
      }),
  }
}

/** Metrics for the admin API: the instance's, through the primary, in a worker; else this process's own. */
export function instanceMetrics(registry: Registry, own: MetricsSource): MetricsSource {
  return cluster.isWorker ? workerMetrics(registry) : own
}
