import { readFile } from 'node:fs/promises'
import type { RuntimeConfig } from '../../config/types.js'
import { parseConfigText, readDenyFiles } from '../../config/load.js'
import { isDecision } from '../../lifecycle/records.js'
import { suggestRules, type SuggestReport } from '../../lifecycle/suggest.js'
import { reportJson } from '../../lifecycle/suggest-format.js'
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
        let report: SuggestReport
        try {
          const text = await readFile(config.file, 'utf8')
          const denyFiles = await readDenyFiles(text)
          report = suggestRules({
            config,
            configText: text,
            records: records.reverse(),
            ...(q.agent !== undefined && group === undefined ? { agent: q.agent } : {}),
            ...(group !== undefined ? { group } : {}),
            compile: (t) => parseConfigText(t, config.file, src.env, denyFiles),
          })
        } catch (err) {
          // The rules are written into the file on disk: one that no longer compiles (a refused edit) cannot take them.
          const message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
          return sendJson(res, 409, { error: 'config_not_editable', message: message.slice(0, 300) })
        }
        sendJson(res, 200, { source: from, ...reportJson(report) })
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
