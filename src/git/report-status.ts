/**
 * The proxy's answer to a refused push (SPEC §8), in the shape git's
 * receive-pack would give: a report-status (gitprotocol-pack(5)) inside the
 * side band the client asked for, so `git push` prints
 * `! [remote rejected] main -> main (<reason>)`. PURE.
 *
 *   report  = PKT("unpack ok") *PKT("ng" SP ref SP reason) 0000
 *   answer  = [band 2: message] band 1: report… 0000    with side-band(-64k)
 *           = report                                     without
 *
 * `ng` lines are the same in report-status and report-status-v2 (v2 only adds
 * `option` lines after `ok`), so one body serves both. "unpack ok" is what
 * receive-pack sends when a hook declines refs: the pack was not the problem,
 * and git then shows only the per-ref reasons. Every ref of the push must get
 * a line, or git reports "remote failed to report status" for the missing one.
 *
 * A client that did not ask for report-status reads no answer at all: git's
 * send-pack then marks every ref as pushed. The only signal such a client
 * heeds is an HTTP error status (remote-curl prints "RPC failed; HTTP 403"),
 * so that case answers `http_error` and the caller sends its usual 403.
 */

import {
  encodePktLine,
  encodeSideBand,
  FLUSH_PKT,
  PKT_MAX_LEN,
  PKT_MAX_PAYLOAD,
  SIDE_BAND_MAX_LEN,
} from './pkt-line.js'
import type { ReportStatus, SideBand } from './receive-pack.js'

export const RECEIVE_PACK_RESULT_TYPE = 'application/x-git-receive-pack-result'

/** Longest reason text on one `ng` line; git prints it inside parentheses on one terminal line. */
export const MAX_REASON_BYTES = 512
/** Longest band-2 message; it is for a human reading `remote: …` lines. */
export const MAX_MESSAGE_BYTES = 4096

export interface RefRefusal {
  readonly ref: string
  readonly reason: string
}

export interface RefusalRequest {
  /** From the parsed head: how the client wants the answer framed. */
  readonly sideBand: SideBand
  readonly reportStatus: ReportStatus
  /** One entry per command of the push, in the order of the commands. */
  readonly refs: readonly RefRefusal[]
  /** Optional lines shown as `remote: …` (side band only); newlines separate lines. */
  readonly message?: string
}

export type RefusalAnswer =
  | { readonly kind: 'report'; readonly contentType: typeof RECEIVE_PACK_RESULT_TYPE; readonly body: Buffer }
  | { readonly kind: 'http_error' }

export function buildRefusal(req: RefusalRequest): RefusalAnswer {
  if (req.reportStatus === 'none') return { kind: 'http_error' }
  const lines: Buffer[] = [encodePktLine('unpack ok\n')]
  for (const r of req.refs) lines.push(encodeNgLine(r))
  lines.push(FLUSH_PKT)
  const report = Buffer.concat(lines)
  if (req.sideBand === 'none') return answer(report)
  const max = req.sideBand === 'side-band-64k' ? PKT_MAX_LEN : SIDE_BAND_MAX_LEN
  const parts: Buffer[] = []
  const message = req.message === undefined ? '' : sanitizeMessage(req.message)
  if (message !== '') parts.push(encodeSideBand(2, Buffer.from(message, 'utf8'), max))
  parts.push(encodeSideBand(1, report, max), FLUSH_PKT)
  return answer(Buffer.concat(parts))
}

function answer(body: Buffer): RefusalAnswer {
  return { kind: 'report', contentType: RECEIVE_PACK_RESULT_TYPE, body }
}

function encodeNgLine(r: RefRefusal): Buffer {
  const ref = truncateUtf8(r.ref.replace(/[\x00-\x20\x7f]/g, '_'), 1024)
  const reason = sanitizeReason(r.reason, Math.min(MAX_REASON_BYTES, PKT_MAX_PAYLOAD - ref.length - 5))
  return encodePktLine(`ng ${ref} ${reason}\n`)
}

/** One line of printable text: controls become spaces, runs of spaces collapse, bounded in bytes. */
export function sanitizeReason(reason: string, maxBytes: number = MAX_REASON_BYTES): string {
  const flat = reason
    .replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim()
  const bounded = truncateUtf8(flat, maxBytes)
  return bounded === '' ? 'refused' : bounded
}

/** Lines for `remote: …`: each line sanitized like a reason, joined with LF, ending in LF. */
function sanitizeMessage(message: string): string {
  const text = message
    .split('\n')
    .map((l) => l.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, ' ').trimEnd())
    .join('\n')
    .replace(/^\n+|\n+$/g, '')
  return text === '' ? '' : truncateUtf8(text, MAX_MESSAGE_BYTES - 1) + '\n'
}

/** Cut `s` to at most `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s
  let out = ''
  let bytes = 0
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8')
    if (bytes + n > maxBytes) break
    out += ch
    bytes += n
  }
  return out
}
