import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client'
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
  /** Monotonic counts of connections refused before any decision, by cause. */
  readonly connectionsRefused?: () => Readonly<Record<string, number>>
  /** Monotonic counts of accepts and dials that failed for want of file descriptors. */
  readonly descriptorsExhausted?: () => Readonly<Record<string, number>>
  /** Monotonic counts of requests refused as malformed (400/405/431/505), by detail word (a closed set). */
  readonly badRequests?: () => ReadonlyMap<string, number>
  /** Monotonic count of denial records folded into another's repeat count. */
  readonly recordsFolded?: () => number
  /** Monotonic counts of records pushed out of the in-memory rings, by kind. */
  readonly ringEvicted?: () => Readonly<Record<string, number>>
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

/**
 * A counter the data path adds to through a Map (a key string and an update, ~0.1 µs): prom-client's
 * own inc() hashes and sorts the label set on every call (~2 µs a record, bench/focus.ts d). What grew
 * since the last scrape goes into the counter in collect(), so a scrape sees every record published before it.
 */
function talliedCounter<L extends string>(config: {
  readonly name: string
  readonly help: string
  readonly labelNames: readonly L[]
  readonly registers: Registry[]
}): (labels: Record<L, string>, n: number) => void {
  const tallies = new Map<string, { readonly labels: Record<L, string>; n: number; seen: number }>()
  new Counter<L>({
    ...config,
    collect() {
      for (const c of tallies.values()) {
        if (c.n > c.seen) this.inc(c.labels, c.n - c.seen)
        c.seen = c.n
      }
    },
  })
  return (labels, n) => {
    let key = ''
    for (const l of config.labelNames) key += `${labels[l]}\0`
    const c = tallies.get(key)
    if (c) c.n += n
    else tallies.set(key, { labels, n, seen: 0 })
  }
}

/**
 * An unlabelled histogram the data path feeds with one bucket search and three additions:
 * prom-client's observe() builds closures and label objects on every call (~1.2 µs a decision,
 * bench/focus.ts d). prom-client reads it at scrape time through get(), in the shape its own
 * histograms give, and writes the text.
 */
class CountedHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    let i = 0
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
    this.count++
  }

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramSample[] } {
    const values: HistogramSample[] = []
    let cumulative = 0
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += this.counts[i] as number
      const le = i < this.bounds.length ? (this.bounds[i] as number) : '+Inf'
      values.push({ labels: { le }, value: cumulative, metricName: `${this.name}_bucket` })
    }
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` })
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

interface HistogramSample {
  readonly labels: Readonly<Record<string, string | number>>
  readonly value: number
  readonly metricName: string
}

/**
 * A counter over monotonic totals kept elsewhere (read at scrape time: nothing on the data path
 * touches prom-client). `label` null: one unlabelled series (the map's single value).
 */
function labelledFromSource(
  name: string,
  help: string,
  label: string | null,
  read: () => ReadonlyMap<string, number>,
  registers: Registry[],
): void {
  const seen = new Map<string, number>()
  new Counter({
    name,
    help,
    labelNames: label === null ? [] : [label],
    registers,
    collect() {
      for (const [value, n] of read()) {
        const before = seen.get(value) ?? 0
        if (n > before) {
          if (label === null) this.inc(n - before)
          else this.inc({ [label]: value }, n - before)
        }
        seen.set(value, Math.max(before, n))
      }
    },
  })
}

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

  const countRequest = talliedCounter({
    name: 'portcullis_requests_total',
    help: 'Decisions made, by verdict, reason code and agent.',
    labelNames: ['decision', 'reason', 'agent'] as const,
    registers,
  })
  const countBytes = talliedCounter({
    name: 'portcullis_bytes_total',
    help: 'Bytes relayed on closed connections; up = client to upstream, down = upstream to client.',
    labelNames: ['direction', 'agent'] as const,
    registers,
  })
  const countWithheld = talliedCounter({
    name: 'portcullis_packages_withheld_total',
    help: 'Package versions (npm) or files (PyPI) withheld from registry metadata answers by package rules.',
    labelNames: ['registry'] as const,
    registers,
  })
  const decisionSeconds = new CountedHistogram(
    'portcullis_decision_duration_seconds',
    'Time to reach a decision, in seconds.',
    DECISION_BUCKETS,
  )
  // prom-client formats it like its own histograms (registerMetric takes any metric with get()).
  registry.registerMetric(decisionSeconds as unknown as Histogram)
  const streamDropped = new Counter({
    name: 'portcullis_admin_stream_dropped_total',
    help: 'Records not sent to slow /api/events/stream clients.',
    registers,
  })
  /**
   * `aggregator`: how the primary adds up the workers' values (workers: N, runtime/worker-metrics.ts):
   * summed, unless every worker tells the same thing (then the most).
   */
  const gauge = (name: string, help: string, read: () => number | undefined, aggregator: Aggregator = 'sum'): void => {
    new Gauge({
      name,
      help,
      registers,
      aggregator,
      collect() {
        const v = read()
        if (v !== undefined) this.set(v)
      },
    })
  }
  gauge('portcullis_active_tunnels', 'Open tunnelled or intercepted client connections.', () => src.activeTunnels?.())
  gauge('portcullis_telemetry_backlog', 'Telemetry records waiting for Redis.', () => src.telemetryBacklog?.())
  gauge(
    'portcullis_config_generation',
    'Generation of the policy in force (1 at start, +1 per accepted reload).',
    () => src.configGeneration?.(),
    'max',
  )
  gauge(
    'portcullis_limits_redis_fallback',
    '1 while rate limits fall back to local buckets because Redis is unreachable.',
    () => {
      const f = src.limitsRedisFallback?.()
      return f === undefined ? undefined : f ? 1 : 0
    },
    'max',
  )

  gauge(
    'portcullis_limits_instances',
    'Instances sharing rate-limit budgets through Redis (each admits its share); 1 without Redis or while limits are local.',
    () => src.limitsInstances?.() ?? 1,
    'max',
  )

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
  labelledFromSource(
    'portcullis_telemetry_sink_failures_total',
    'Records a telemetry sink threw on.',
    'sink',
    () => src.sinkFailures?.() ?? new Map(),
    registers,
  )
  labelledFromSource(
    'portcullis_connections_refused_total',
    'Client connections closed before any decision: past listen.max_connections, past the unauthenticated connections a source may hold, past its budget of unauthenticated denials, or with no first request head within header_timeout_ms.',
    'cause',
    () => new Map(Object.entries(src.connectionsRefused?.() ?? {})),
    registers,
  )
  labelledFromSource(
    'portcullis_descriptors_exhausted_total',
    'Accepts and upstream dials that failed because the process ran out of file descriptors (EMFILE/ENFILE).',
    'where',
    () => new Map(Object.entries(src.descriptorsExhausted?.() ?? {})),
    registers,
  )
  labelledFromSource(
    'portcullis_bad_requests_total',
    "Requests refused as malformed or ambiguous (400, 405, 431, 505: smuggling shapes, bad chunking, duplicate Host), by the answer's detail word (`other` past a closed list).",
    'detail',
    () => src.badRequests?.() ?? new Map(),
    registers,
  )
  labelledFromSource(
    'portcullis_ring_evicted_total',
    'Records pushed out of the in-memory ring by newer ones of their kind (denials have a ring of their own).',
    'kind',
    () => new Map(Object.entries(src.ringEvicted?.() ?? {})),
    registers,
  )
  labelledFromSource(
    'portcullis_records_folded_total',
    'Denial records not written one by one but folded into a repeat count (a flood of the same denial from one source).',
    null,
    () => new Map([['', src.recordsFolded?.() ?? 0]]),
    registers,
  )

  collectDefaultMetrics({ register: registry })

  const sink: Sink = {
    name: 'metrics',
    write(r) {
      if (r.event === 'decision') {
        if (isReason(r.reason)) countRequest({ decision: r.decision, reason: r.reason, agent: agentLabel(r.agent) }, 1)
        const withheld = r.package?.withheld ?? 0
        if (withheld > 0) countWithheld({ registry: r.package?.registry ?? '' }, withheld)
      } else if (r.event === 'close') {
        const agent = agentLabel(r.agent)
        if (r.bytes_up > 0) countBytes({ direction: 'up', agent }, r.bytes_up)
        if (r.bytes_down > 0) countBytes({ direction: 'down', agent }, r.bytes_down)
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
