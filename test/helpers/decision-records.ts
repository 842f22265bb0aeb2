import type { DecisionRecord } from '../../src/telemetry/events.js'

let seq = 0

/**
 * A decision record as the proxy writes it, from the facts a test cares about: `rec('ci', 'CONNECT
 * a.example.com:443')`, `rec('ci', 'GET https://github.com/o/r.git/info/refs', { reason: 'denied_path' })`.
 * Denied with denied_no_rule unless told otherwise.
 */
export function rec(agent: string | null, request: string, more: Partial<DecisionRecord> = {}): DecisionRecord {
  const [method, target] = request.split(' ') as [string, string]
  let scheme: 'http' | 'https' = 'https'
  let host: string
  let port: number
  let path: string | null = null
  if (method === 'CONNECT') {
    const i = target.lastIndexOf(':')
    host = target.slice(0, i)
    port = Number(target.slice(i + 1))
  } else {
    const u = new URL(target)
    scheme = u.protocol === 'https:' ? 'https' : 'http'
    host = u.hostname
    port = u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port)
    path = u.pathname
  }
  seq++
  const minute = String(seq % 60).padStart(2, '0')
  return {
    time: `2026-11-25T10:${minute}:00.000Z`,
    id: `01JD${String(seq).padStart(22, '0')}`,
    event: 'decision',
    agent,
    // The record's source field (who asked): data for suggest and replay, never an address dialled.
    src: '10.1.2.3:40000',
    method,
    scheme,
    host,
    port,
    path,
    tls: method === 'CONNECT' ? null : scheme === 'https' ? 'intercept' : null,
    decision: 'deny',
    reason: 'denied_no_rule',
    rule: null,
    mode: 'enforce',
    would_deny: false,
    address: null,
    ...more,
  }
}

/** The same request allowed by `rule`. */
export function allowed(
  agent: string,
  request: string,
  rule: string,
  more: Partial<DecisionRecord> = {},
): DecisionRecord {
  return rec(agent, request, { decision: 'allow', reason: 'allowed', rule, ...more })
}
