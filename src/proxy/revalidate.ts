import type { RuntimeConfig } from '../config/types.js'
import { stillAuthenticates } from '../identity/authenticate.js'
import { sandboxFactsOf } from '../identity/sandbox-auth.js'
import { isAddressAllowed } from '../net/address-class.js'
import {
  decideConnectApproved,
  denyByAddressApproved,
  matchRequestApproved,
  type ApprovalIndex,
} from '../policy/approvals.js'
import { hasIpDenyRules } from '../policy/decide.js'
import { isIpLiteral } from '../net/host.js'
import { effectiveMode } from '../policy/compiled.js'
import type { TrackedConn, TunnelTracker } from './tracker.js'

/**
 * After a reload or an approval change: would the policy in force let this
 * open connection in, handled as it is? Everything the CONNECT was admitted on
 * is asked again: the credentials (a rotated token or a narrowed source_cidrs),
 * the decision for agent, host and port (approvals included), whether the
 * policy now needs to see inside (a spliced tunnel cannot be made to), and the
 * address it goes to (allow_private, upstream.resolve pins: changed or dropped; IP and CIDR deny rules). Audit mode keeps a
 * policy denial open, as at CONNECT time; credentials and addresses never are.
 */
export function stillAllowed(
  conn: TrackedConn,
  config: RuntimeConfig,
  approvals: ApprovalIndex,
  nowMs: number,
): boolean {
  const { policy, upstream } = config
  if (!stillAuthenticates(policy, conn.agent, conn.credential, conn.srcIp)) return false
  const sandbox = sandboxFactsOf(conn.credential)?.sandbox ?? null
  if (!isAddressAllowed(conn.address, upstream.allowPrivate)) return false
  const pins = upstream.resolve.get(conn.host)
  if (pins === undefined ? conn.pinned : !pins.includes(conn.address)) return false
  const audit = effectiveMode(policy, conn.agent) === 'audit'
  // The address the connection went to, asked of IP and CIDR deny rules, as a name's was when it opened.
  const byAddress = (request: Parameters<typeof denyByAddressApproved>[3]): boolean =>
    !hasIpDenyRules(policy, conn.agent) ||
    isIpLiteral(conn.host) !== null ||
    denyByAddressApproved(
      policy,
      { agent: conn.agent, host: conn.host, port: conn.port },
      conn.address,
      request,
      approvals,
      nowMs,
      sandbox,
    )?.verdict !== 'deny' ||
    audit
  if (conn.request !== undefined) {
    const r = conn.request
    const facts = {
      agent: conn.agent,
      method: r.method,
      scheme: r.scheme,
      host: conn.host,
      port: conn.port,
      path: r.path,
      query: '',
    }
    const m = matchRequestApproved(policy, facts, approvals, nowMs, sandbox)
    return (m.decision.verdict === 'allow' || audit) && byAddress(facts)
  }
  const d = decideConnectApproved(
    policy,
    { agent: conn.agent, host: conn.host, port: conn.port },
    approvals,
    nowMs,
    sandbox,
  )
  if (d.verdict === 'deny') return audit
  return !(conn.via === 'tunnel' && d.via === 'intercept') && byAddress(null)
}

/** Close every tracked connection stillAllowed refuses; how many were closed. */
export function closeDisallowed(
  tracker: TunnelTracker,
  config: RuntimeConfig,
  approvals: ApprovalIndex,
  nowMs: number,
): number {
  let closed = 0
  for (const conn of [...tracker.all()]) {
    if (stillAllowed(conn, config, approvals, nowMs)) continue
    conn.close()
    closed++
  }
  return closed
}
