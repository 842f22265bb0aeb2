import type { Logger } from 'pino'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { connStateOf } from './conn-state.js'
import { respondBadRequest } from './respond.js'

/**
 * Requests refused as malformed or ambiguous (400, 405, 431, 505: smuggling shapes, bad chunking,
 * duplicate Host or Proxy-Authorization, a target the proxy cannot read): they are no policy decision
 * and make no record, but an operator must be able to see them (a client that frames requests the
 * wrong way, or one probing for a desync), as Squid's access log shows its 400s. Each is one log line,
 * PC_BAD_REQUEST (the source, the listener and the answer's detail word; never a header value, which
 * may hold a credential), and counted by detail for portcullis_bad_requests_total.
 */
export interface BadRequests {
  /** A 400/405/431/505 went out on `socket` (a request head refused; the connection closes after it). */
  note(socket: Duplex, listener: BadRequestListener, status: number, detail: string): void
  /** Refusals so far, by detail label (a word of BAD_REQUEST_DETAILS, or `other`), for the metrics. */
  readonly counts: ReadonlyMap<string, number>
}

/** The proxy listener, or a connection inside a CONNECT (intercepted, or cleartext in a tunnel). */
export type BadRequestListener = 'proxy' | 'tunnel'

/**
 * The detail words a refusal's metric label may take (request-guard.ts, request-flow.ts, connect.ts,
 * websocket.ts, and node's parser errors as answerClientError names them); any other is `other`, so
 * the label set stays closed whatever a client sends.
 */
export const BAD_REQUEST_DETAILS: ReadonlySet<string> = new Set([
  // request-guard.ts
  'bad_header_list',
  'too_many_headers',
  'headers_too_large',
  'bad_header_name',
  'bad_header_value',
  'duplicate_proxy_authorization',
  'duplicate_host',
  'transfer_encoding_in_http10',
  'cl_te_conflict',
  'duplicate_content_length',
  'duplicate_transfer_encoding',
  'bad_content_length',
  'bad_transfer_encoding',
  'http_version_not_supported',
  // request-flow.ts, connect.ts, websocket.ts, intercept.ts
  'missing_host',
  'origin_form',
  'bad_target',
  'bad_path',
  'bad_connect_target',
  'upgrade_not_supported',
  'upgrade_with_body',
  'bad_websocket_handshake',
  'connect_in_tunnel',
  // node's parser (HPE_* codes, answerClientError)
  'malformed',
  'invalid_method',
  'invalid_url',
  'invalid_constant',
  'invalid_version',
  'invalid_header_token',
  'invalid_content_length',
  'invalid_chunk_size',
  'invalid_eof_state',
  'invalid_transfer_encoding',
  'unexpected_content_length',
  'unexpected_space',
  'closed_connection',
  'cr_expected',
  'lf_expected',
  'strict',
  'paused_upgrade',
  'paused_h2_upgrade',
])

/**
 * Lines written at most per second. A refusal closes its connection, so there is at most one line per
 * connection, but connections are not bounded in rate (the per-source limits bound how many are open
 * at once, not how fast they come): past this, lines are skipped and the next one written says how
 * many were (`suppressed`). The counter counts every one. A flood thus costs a few lines a second.
 */
export const BAD_REQUEST_LINES_PER_SECOND = 20

export function createBadRequests(log: Logger, now: () => number = Date.now): BadRequests {
  const counts = new Map<string, number>()
  let windowStart = -Infinity
  let written = 0
  let suppressed = 0
  return {
    counts,
    note(socket, listener, status, detail) {
      const label = BAD_REQUEST_DETAILS.has(detail) ? detail : 'other'
      counts.set(label, (counts.get(label) ?? 0) + 1)
      const t = now()
      if (t - windowStart >= 1000) {
        windowStart = t
        written = 0
      }
      if (written >= BAD_REQUEST_LINES_PER_SECOND) return void suppressed++
      written++
      const line = {
        code: 'PC_BAD_REQUEST',
        src: connStateOf(socket as Socket).src,
        listener,
        status,
        detail: label === 'other' ? detail.slice(0, 40) : detail,
        ...(suppressed > 0 ? { suppressed } : {}),
      }
      suppressed = 0
      log.info(line, 'a malformed or ambiguous request was refused; its connection closed')
    },
  }
}

/** A request refused on a bare socket as malformed: noted, then answered (respondBadRequest) and closed. */
export function refuseMalformed(
  badRequests: BadRequests,
  socket: Duplex,
  listener: BadRequestListener,
  status: 400 | 405 | 431 | 505,
  detail: string,
): void {
  badRequests.note(socket, listener, status, detail)
  respondBadRequest(socket, status, detail)
}
