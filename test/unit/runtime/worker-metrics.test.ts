import type { Worker } from 'node:cluster'
import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { createMetricsGatherer, type MetricsAnswer, type PartAsk } from '../../../src/runtime/worker-metrics.js'
import { createMetrics } from '../../../src/telemetry/metrics.js'

/** A worker of the primary's side: what it is sent, and whether it gives its part when asked. */
function fakeWorker(part: (() => Promise<object[]>) | null): { worker: Worker; answers: MetricsAnswer[] } {
  const answers: MetricsAnswer[] = []
  const worker = {
    isConnected: () => true,
    send(m: PartAsk | MetricsAnswer, cb?: (err: Error | null) => void) {
      cb?.(null)
      if (m.portcullis === 'metrics') answers.push(m)
      else if (part !== null)
        void part().then((metrics) => gatherer.onMessage(worker, { portcullis: 'metrics-part', id: m.id, metrics }))
      return true
    },
  } as unknown as Worker
  return { worker, answers }
}

/** One worker's registry, with `agents` decisions counted and its config generation. */
function registry(agents: readonly string[], generation: number): () => Promise<object[]> {
  const m = createMetrics({ configGeneration: () => generation })
  for (const agent of agents)
    m.sink.write({ event: 'decision', decision: 'allow', reason: 'allowed', agent } as Parameters<
      typeof m.sink.write
    >[0])
  return () => m.registry.getMetricsAsJSON()
}

let gatherer: ReturnType<typeof createMetricsGatherer>

t.test('the primary adds up every listening worker: counters summed, gauges by their aggregator', async (t) => {
  const a = fakeWorker(registry(['ci', 'ci'], 3))
  const b = fakeWorker(registry(['ci'], 2))
  gatherer = createMetricsGatherer(() => [a.worker, b.worker], 1000)
  gatherer.onMessage(a.worker, { portcullis: 'metrics', id: 7 })
  await t.resolveMatch(
    (async () => {
      while (a.answers.length === 0) await delay(5)
      return a.answers[0]
    })(),
    { portcullis: 'metrics', id: 7, error: null },
  )
  const text = a.answers[0]?.text ?? ''
  t.match(text, /portcullis_requests_total\{decision="allow",reason="allowed",agent="ci"\} 3\n/, 'both workers')
  t.match(text, /portcullis_config_generation 3\n/, 'the newest generation, not 5')
  t.equal(b.answers.length, 0, 'only the worker that asked is answered')
})

t.test('a worker that does not give its part in time fails the scrape rather than leave its numbers out', async (t) => {
  const a = fakeWorker(registry(['ci'], 1))
  const silent = fakeWorker(null)
  gatherer = createMetricsGatherer(() => [a.worker, silent.worker], 50)
  gatherer.onMessage(a.worker, { portcullis: 'metrics', id: 1 })
  await delay(150)
  t.match(a.answers, [{ id: 1, text: null, error: /1 of 2 workers did not give their metrics within 50 ms/ }])
})
