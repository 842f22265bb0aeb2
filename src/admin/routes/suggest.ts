import { readFile } from 'node:fs/promises'
import type { RuntimeConfig } from '../../config/types.js'
import { readDenyFiles } from '../../config/load.js'
import type { DenyFiles } from '../../config/compile-packages.js'
import { isDecision } from '../../lifecycle/records.js'
import { createSuggestRunner, type SuggestRunner } from '../../lifecycle/suggest-pool.js'
import type { DecisionRecord } from '../../telemetry/events.js'
import type { RingSink } from '../../telemetry/ring-sink.js'
import { isQueryError, parseEventQuery, queryRing, type EventPage, type EventQuery } from '../event-query.js'
import { sendJson, type Route } from '../server.js'

export interface SuggestSource {
  readonly config: () => RuntimeConfig
  readonly ring: RingSink
  /** The Redis stream reader when telemetry.redis is configured (as GET /api/events uses it). */
  readonly redis: { query(q: EventQuery): Promise<EventPage> } | null
  readonly env: NodeJS.ProcessEnv
  readonly onWorkerError: (err: unknown) => void
}

/** Denials read from Redis for one suggestion at most (a week of one agent's denials, sampled beyond). */
const MAX_RECORDS = 50_000
const PAGE = 1000

/**
 * GET /api/suggest?agent=&host=&reason=&sandbox=&label=&since=&until=&group= — the rules that would
 * admit the denials the filter selects (the analyst page's current filter), from the same suggest
 * logic as `portcullis suggest` (lifecycle/suggest.ts), each target with its YAML to paste. Records
 * come from Redis when configured, else this instance's memory, like GET /api/events.
 */
export function suggestRoutes(src: SuggestSource): Route[] {
  // Suggesting from tens of thousands of denials takes seconds: a worker thread does it (lifecycle/suggest-pool.ts).
  let runner: SuggestRunner | null = null
  return [
    {
      method: 'GET',
      path: '/api/suggest',
      handler: async (_req, res, url) => {
        const params = new URLSearchParams(url.searchParams)
        const group = params.get('group') || undefined
        params.delete('group')
        params.set('decision', 'deny')
        const q = parseEventQuery(params, new Date())
        if (isQueryError(q)) return sendJson(res, 400, { error: 'bad_query', message: q.error })
        const config = src.config()
        if (group !== undefined && !(config.policy.groups?.has(group) ?? false))
          return sendJson(res, 404, {
            error: 'unknown_group',
            message: `no group '${group.slice(0, 100)}' in the config`,
          })
        let records: DecisionRecord[]
        let from: 'redis' | 'memory' = 'memory'
        try {
          records = src.redis ? await readAll(src.redis, q) : []
          if (src.redis) from = 'redis'
        } catch {
          records = []
        }
        if (from === 'memory') {
          const snapshot = src.ring.snapshot()
          records = queryRing(snapshot, { ...q, limit: snapshot.length + 1 }).records.filter(isDecision)
        }
        let text: string
        let denyFiles: DenyFiles
        try {
          text = await readFile(config.file, 'utf8')
          denyFiles = await readDenyFiles(text)
        } catch (err) {
          return sendJson(res, 409, { error: 'config_not_editable', message: firstLine(err) })
        }
        runner ??= createSuggestRunner(src.onWorkerError)
        const result = await runner.run({
          configText: text,
          file: config.file,
          env: src.env,
          denyFiles,
          records: records.reverse(),
          ...(q.agent !== undefined && group === undefined ? { agent: q.agent } : {}),
          ...(group !== undefined ? { group } : {}),
        })
        // The rules are written into the file on disk: one that no longer compiles (a refused edit) cannot take them.
        if (result.kind === 'config_error')
          return sendJson(res, 409, { error: 'config_not_editable', message: result.message })
        if (result.kind === 'failed')
          return sendJson(res, 503, {
            error: 'suggest_failed',
            message: `the suggestion could not be made (${result.why})`,
          })
        sendJson(res, 200, { source: from, ...result.report })
      },
    },
  ]
}

async function readAll(redis: NonNullable<SuggestSource['redis']>, q: EventQuery): Promise<DecisionRecord[]> {
  const out: DecisionRecord[] = []
  for (let cursor: string | undefined; out.length < MAX_RECORDS;) {
    const page = await redis.query({ ...q, limit: PAGE, ...(cursor === undefined ? {} : { cursor }) })
    out.push(...page.records.filter(isDecision))
    if (page.nextCursor === null) break
    cursor = page.nextCursor
  }
  return out
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)).slice(0, 300)
}
