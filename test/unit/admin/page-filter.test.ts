import { readFileSync } from 'node:fs'
import t from 'tap'
import { isQueryError, parseEventQuery } from '../../../src/admin/event-query.js'
import { normalizeHost } from '../../../src/net/host.js'
import { matchesFilter } from '../../../src/telemetry/event-filter.js'
import type { TelemetryRecord } from '../../../src/telemetry/events.js'
import { FILTER_CASES, NOW } from '../../fixtures/event-filter-cases.js'

/**
 * The analyst page filters the rows it holds in the browser (src/admin/page/app.js `filters` and
 * `matches`), so it cannot import telemetry/event-filter.ts. This test runs the page's own two
 * functions on the filter's shared cases and holds them to the same answers, over what the page
 * shows and lets one type: denial rows, and the agent, host and reason fields.
 */
const APP = readFileSync(new URL('../../../src/admin/page/app.js', import.meta.url), 'utf8')

function pageFunction(name: string): string {
  const m = new RegExp(`^function ${name}\\(.*\\) \\{\\n[\\s\\S]*?^\\}$`, 'm').exec(APP)
  if (!m) throw new Error(`app.js has no top-level function ${name}()`)
  return m[0]
}

type Fields = Record<'f-agent' | 'f-host' | 'f-reason', string>
type PageFilter = (typed: Fields, record: TelemetryRecord) => boolean

// The page's code, run as written; its global `$` becomes a parameter reading the typed form fields.
const pageFilter = new Function(
  `${pageFunction('filters').replace('function filters()', 'function filters($)')}\n${pageFunction('matches')}\n` +
    'return (typed, r) => matches(r, filters((sel) => ({ value: typed[sel.slice(1)] })))',
)() as PageFilter

const PAGE_PARAMS = new Set(['agent', 'host', 'reason'])

let agreed = 0
for (const c of FILTER_CASES) {
  const params = new URLSearchParams(c.query)
  const keys = [...params.keys()]
  const host = params.get('host')
  // The page lower-cases what is typed; the API also drops a trailing dot and applies IDNA.
  const typable = host === null || normalizeHost(host.replace(/^\*\./, '')) === host.replace(/^\*\./, '').toLowerCase()
  const shown = c.record.event === 'decision' && c.record.decision === 'deny'
  if (!shown || !typable || !keys.every((k) => PAGE_PARAMS.has(k))) continue
  agreed++
  t.test(`the page agrees: ${c.behaviour} (${c.query || 'no query'})`, async (t) => {
    const q = parseEventQuery(params, NOW)
    if (isQueryError(q)) throw new Error(q.error)
    const typed: Fields = {
      'f-agent': ` ${params.get('agent') ?? ''} `,
      'f-host': host ?? '',
      'f-reason': params.get('reason') ?? '',
    }
    t.equal(pageFilter(typed, c.record), matchesFilter(c.record, q))
    t.equal(pageFilter(typed, c.record), c.expected)
  })
}

t.test('the page is held to most of the shared cases', async (t) => {
  t.ok(agreed >= 10, `${agreed} cases apply to the page`)
})
