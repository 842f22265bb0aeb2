import type { TelemetryRecord } from './events.js'

/** A sink only enqueues or counts; it must never block or await on the data path. */
export interface Sink {
  readonly name: string
  write(record: TelemetryRecord): void
}

export interface Bus {
  subscribe(sink: Sink): () => void
  publish(record: TelemetryRecord): void
  /** Failures per sink name, for metrics and tests. */
  readonly sinkFailures: ReadonlyMap<string, number>
}

/**
 * Per-instance synchronous fan-out. Not a global diagnostics_channel: tests run
 * several proxies in one process and must not see each other's records. Each
 * sink is isolated so a throwing sink cannot break the data path.
 */
export function createBus(onSinkError?: (sink: string, err: unknown) => void): Bus {
  const sinks: Sink[] = []
  const failures = new Map<string, number>()
  return {
    sinkFailures: failures,
    subscribe(sink) {
      sinks.push(sink)
      return () => {
        const i = sinks.indexOf(sink)
        if (i >= 0) sinks.splice(i, 1)
      }
    },
    publish(record) {
      for (const sink of sinks) {
        try {
          sink.write(record)
        } catch (err) {
          failures.set(sink.name, (failures.get(sink.name) ?? 0) + 1)
          onSinkError?.(sink.name, err)
        }
      }
    },
  }
}
