/**
 * Second line of defence against request smuggling (SPEC: smuggling shapes
 * are refused). Node's llhttp rejects many of these itself; this check runs
 * on `req.rawHeaders` so that whatever gets past the parser, or a lenient
 * parser setting, still cannot put an ambiguous message on an upstream
 * connection. PURE.
 */

export type RequestHeadCheck =
  { readonly ok: true } | { readonly ok: false; readonly status: 400 | 431 | 505; readonly detail: string }

export interface RequestHeadLimits {
  /** Sum of name + value + 4 (`: ` and CRLF) over all header lines. Node's default is 16 KiB. */
  readonly maxHeaderBytes: number
  readonly maxHeaderCount: number
}

export const DEFAULT_REQUEST_HEAD_LIMITS: RequestHeadLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 200,
})

// RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// Field values: visible chars, SP, HTAB and obs-text; no CR/LF (obs-fold) or other controls.
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/
const DIGITS = /^[0-9]{1,15}$/

function fail(status: 400 | 431 | 505, detail: string): RequestHeadCheck {
  return { ok: false, status, detail }
}

/** Check a request head given as Node's flat `[name, value, name, value, …]`, and its HTTP version. */
export function checkRequestHead(
  rawHeaders: readonly string[],
  httpVersion = '1.1',
  limits: RequestHeadLimits = DEFAULT_REQUEST_HEAD_LIMITS,
): RequestHeadCheck {
  // HTTP/1.0 and 1.1 only: node's parser also reads `HTTP/2.0` (and a request line with no version as
  // 0.9), which would be forwarded as 1.1, a message its sender did not write (Squid answers 505).
  if (httpVersion !== '1.1' && httpVersion !== '1.0') return fail(505, 'http_version_not_supported')
  if (rawHeaders.length % 2 !== 0) return fail(400, 'bad_header_list')
  if (rawHeaders.length / 2 > limits.maxHeaderCount) return fail(431, 'too_many_headers')
  let bytes = 0
  for (const s of rawHeaders) bytes += s.length + 2
  if (bytes > limits.maxHeaderBytes) return fail(431, 'headers_too_large')

  const contentLengths: string[] = []
  const transferEncodings: string[] = []
  let proxyAuthorizations = 0
  let hosts = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? ''
    const value = rawHeaders[i + 1] ?? ''
    if (!TOKEN.test(name)) return fail(400, 'bad_header_name')
    if (BAD_VALUE_CHAR.test(value)) return fail(400, 'bad_header_value')
    const lower = name.toLowerCase()
    if (lower === 'content-length') contentLengths.push(value)
    else if (lower === 'transfer-encoding') transferEncodings.push(value)
    else if (lower === 'proxy-authorization') proxyAuthorizations++
    else if (lower === 'host') hosts++
  }
  // Two credentials are one too many: which one counts would depend on who reads the request.
  if (proxyAuthorizations > 1) return fail(400, 'duplicate_proxy_authorization')
  // RFC 9112 §3.2: more than one Host is a 400; which one names the target would depend on the reader.
  if (hosts > 1) return fail(400, 'duplicate_host')
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing (1.0 has no chunking).
  if (httpVersion === '1.0' && transferEncodings.length > 0) return fail(400, 'transfer_encoding_in_http10')
  return checkFraming(contentLengths, transferEncodings)
}

/** Exactly one way to find the end of the body, or the request is refused. */
function checkFraming(contentLengths: readonly string[], transferEncodings: readonly string[]): RequestHeadCheck {
  if (contentLengths.length > 0 && transferEncodings.length > 0) return fail(400, 'cl_te_conflict')
  if (contentLengths.length > 1) return fail(400, 'duplicate_content_length')
  if (transferEncodings.length > 1) return fail(400, 'duplicate_transfer_encoding')
  const cl = contentLengths[0]
  if (cl !== undefined && !DIGITS.test(cl.trim())) return fail(400, 'bad_content_length')
  const te = transferEncodings[0]
  // Only a single `chunked` is unambiguous; `gzip, chunked` or `chunked, identity`
  // are exactly the values front and back ends disagree about.
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return fail(400, 'bad_transfer_encoding')
  return { ok: true }
}
