import t from 'tap'
import { summarizeSandboxes } from '../../../src/sandboxes/seen.js'
import type { TelemetryRecord } from '../../../src/telemetry/events.js'

const NOW = Date.parse('2026-12-06T12:00:00Z')

const rec = (sandbox: string, time: string, extra: Record<string, unknown> = {}): TelemetryRecord =>
  ({
    time,
    id: `r-${sandbox}-${time}`,
    event: 'decision',
    agent: 'ci',
    sandbox,
    labels: {},
    decision: 'allow',
    ...extra,
  }) as unknown as TelemetryRecord

t.test('state: revoked, then expired by its expiry or its last refusal, else active', async (t) => {
  const records = [
    rec('live', '2026-12-06T11:00:00.000Z', { sandbox_expires_at: '2026-12-06T13:00:00.000Z' }),
    rec('lapsed', '2026-12-06T10:00:00.000Z', { sandbox_expires_at: '2026-12-06T11:30:00.000Z' }),
    rec('gone', '2026-12-06T10:00:00.000Z', { sandbox_expires_at: '2026-12-06T13:00:00.000Z' }),
    rec('old-record', '2026-12-06T09:00:00.000Z'),
    rec('old-record', '2026-12-06T09:30:00.000Z', { decision: 'deny', detail: 'expired' }),
    rec('no-expiry-known', '2026-12-06T09:00:00.000Z'),
  ]
  const revoked = [{ id: 'gone' }] as unknown as Parameters<typeof summarizeSandboxes>[1]
  const byId = new Map(summarizeSandboxes(records, revoked, NOW).map((s) => [s.id, s]))
  t.match(byId.get('live'), { state: 'active', expires_at: '2026-12-06T13:00:00.000Z', allowed: 1 })
  t.match(byId.get('lapsed'), { state: 'expired', expires_at: '2026-12-06T11:30:00.000Z' })
  t.match(byId.get('gone'), { state: 'revoked', revoked: true })
  t.match(byId.get('old-record'), { state: 'expired', expires_at: null, allowed: 1, denied: 1 })
  t.match(byId.get('no-expiry-known'), { state: 'active', expires_at: null })
  t.notOk('lastDetail' in (byId.get('live') as object), 'no working field leaks into the answer')
})
