import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { isReason } from '../policy/reasons.js'
import type { Sink } from './bus.js'

/**
 * Prometheus metrics (SPEC §5) on a per-instance Registry: tests run several
 * proxies in one process, and the global registry would mix them or throw on
 * duplicate names. Counters are fed from records by `sink`; gauges read their
 * values from callbacks at scrape time, so nothing on the data path awaits.
 */
export interface MetricsSources {
  readonly activeTunnels?: () => number
  readonly telemetryBacklog?: () => number
  /** Monotonic total of records the Redis sink dropped (its `dropped()`). */
  readonly telemetryDropped?: () => number
  readonly configGeneration?: () => number
  /** True while rate limits run on local buckets because Redis is unreachable. */
  readonly limitsRedisFallback?: () => boolean
  /** Live instances sharing rate-limit budgets through Redis. */
  readonly limitsInstances?: () => number
  /** Failures per sink name (the bus's `sinkFailures`). */
  readonly sinkFailures?: () => ReadonlyMap<string, number>
  /**
   * Is this a configured agent id? Records of failed authentication carry the
   * *claimed* id, which is user-controlled; only configured ids become label
   * values (others are labelled ""), so cardinality stays bounded.
   */
  readonly knownAgent?: (id: string) => boolean
}

export interface Metrics {
  readonly sink: Sink
  readonly registry: Registry
  readonly contentType: string
  /** Time from request (or CONNECT) parsed to decision made, in seconds. */
  observeDecisionSeconds(s: number): void
  /** Records a slow SSE client missed (admin/routes/events.ts `onStreamDrop`). */
  countStreamDropped(n: number): void
  /** Set or replace sources after creation (e.g. the Redis sink is built later). */
  setSources(s: MetricsSources): void
  text(): Promise<string>
}

/** Without a `knownAgent` predicate, at most this many distinct agent label values; the rest are "". */
const MAX_AGENT_LABELS = 1000
const DECISION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

export function createMetrics(initial: MetricsSources = {}): Metrics {
  const registry = new Registry()
  const src: { -readonly [K in keyof MetricsSources]: MetricsSources[K] } = { ...initial }
  const seenAgents = new Set<string>()
  const registers = [registry]

  const agentLabel = (agent: string | null): string => {
    if (agent === null) return ''
    if (src.knownAgent) return src.knownAgent(agent) ? agent : ''
    if (seenAgents.has(agent)) return agent
    if (seenAgents.size >= MAX_AGENT_LABELS) return ''
    seenAgents.add(agent)
    return agent
  }

  // The data path only adds to these maps (a string key and a Map update, ~0.1 µs); prom-client's own
  // inc() hashes and sorts the label set on every call (~2 µs a record, bench/focus.ts d). The counters
  // take what grew since the last scrape in collect(), so a scrape sees every record published before it.
  const requestCounts = new Map<string, { readonly labels: { decision: string; reason: string; agent: string }; n: number; seen: number }>()
  const byteCounts = new Map<string, { readonly labels: { direction: 'up' | 'down'; agent: string }; n: number; seen: number }>()
  new Counter({
    name: 'portcullis_requests_total',
    help: 'Decisions made, by verdict, reason code and agent.',
    labelNames: ['decision', 'reason', 'agent'] as const,
    registers,
    collect() {
      for (const c of requestCounts.values()) {
        if (c.n > c.seen) this.inc(c.labels, c.n - c.seen)
        c.seen = c.n
      }
    },
  })
  new Counter({
    name: 'portcullis_bytes_total',
    help: 'Bytes relayed on closed connections; up = client to upstream, down = upstream to client.',
    labelNames: ['direction', 'agent'] as const,
    registers,
    collect() {
      for (const c of byteCounts.values()) {
        if (c.n > c.seen) this.inc(c.labels, c.n - c.seen)
        c.seen = c.n
      }
    },
  })
  const countRequest = (decision: string, reason: string, agent: string): void => {
    const key = `${decision}\0${reason}\0${agent}`
    const c = requestCounts.get(key)
    if (c) c.n++
    else requestCounts.set(key, { labels: { decision, reason, agent }, n: 1, seen: 0 })
  }
  const countBytes = (direction: 'up' | 'down', agent: string, n: number): void => {
    const key = `${direction}\0${agent}`
    const c = byteCounts.get(key)
    if (c) c.n += n
    else byteCounts.set(key, { labels: { direction, agent }, n, seen: 0 })
  }
  const decisionSeconds = new Histogram({
    name: 'portcullis_decision_duration_seconds',
    help: 'Time to reach a decision, in seconds.',
    buckets: DECISION_BUCKETS,
    registers,
  })
  const streamDropped = new Counter({
    name: 'portcullis_admin_stream_dropped_total',
    help: 'Records not sent to slow /api/events/stream clients.',
    registers,
  })
  const gauge = (name: string, help: string, read: () => number | undefined): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = read()
        if (v !== undefined) this.set(v)
      },
    })
  }
  gauge('portcullis_active_tunnels', 'Open tunnelled or intercepted client connections.', () => src.activeTunnels?.())
  gauge('portcullis_telemetry_backlog', 'Telemetry records waiting for Redis.', () => src.telemetryBacklog?.())
  gauge('portcullis_config_generation', 'Generation of the policy in force (1 at start, +1 per accepted reload).', () => src.configGeneration?.())
  gauge('portcullis_limits_redis_fallback', '1 while rate limits fall back to local buckets because Redis is unreachable.', () => {
    const f = src.limitsRedisFallback?.()
    return f === undefined ? undefined : f ? 1 : 0
  })

  gauge('portcullis_limits_instances', 'Instances sharing rate-limit budgets through Redis (each admits its share); 1 without Redis or while limits are local.', () => src.limitsInstances?.() ?? 1)

  // Counter semantics over a monotonic source: add what grew since the last scrape.
  let droppedSeen = 0
  new Counter({
    name: 'portcullis_telemetry_dropped_total',
    help: 'Telemetry records dropped because the Redis buffer overflowed (or was unsent at shutdown).',
    registers,
    collect() {
      const now = src.telemetryDropped?.() ?? droppedSeen
      if (now > droppedSeen) this.inc(now - droppedSeen)
      droppedSeen = Math.max(droppedSeen, now)
    },
  })
  const sinkSeen = new Map<string, number>()
  new Counter({
    name: 'portcullis_telemetry_sink_failures_total',
    help: 'Records a telemetry sink threw on.',
    labelNames: ['sink'] as const,
    registers,
    collect() {
      for (const [sink, n] of src.sinkFailures?.() ?? []) {
        const seen = sinkSeen.get(sink) ?? 0
        if (n > seen) this.inc({ sink }, n - seen)
        sinkSeen.set(sink, Math.max(seen, n))
      }
    },
  })

  collectDefaultMetrics({ register: registry })

  const sink: Sink = {
    name: 'metrics',
    write(r) {
      if (r.event === 'decision') {
        if (isReason(r.reason)) countRequest(r.decision, r.reason, agentLabel(r.agent))
      } else if (r.event === 'close') {
        const agent = agentLabel(r.agent)
        if (r.bytes_up > 0) countBytes('up', agent, r.bytes_up)
        if (r.bytes_down > 0) countBytes('down', agent, r.bytes_down)
      }
    },
  }

  return {
    sink,
    registry,
    contentType: registry.contentType,
    observeDecisionSeconds(s) {
      if (Number.isFinite(s) && s >= 0) decisionSeconds.observe(s)
    },
    countStreamDropped(n) {
      if (n > 0) streamDropped.inc(n)
    },
    setSources(s) {
      Object.assign(src, s)
    },
    text: () => registry.metrics(),
  }
}
