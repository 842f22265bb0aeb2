import t from 'tap'
import { checkRequestHead, DEFAULT_REQUEST_HEAD_LIMITS } from '../../../src/proxy/request-guard.js'

const BASE = ['Host', 'example.com', 'User-Agent', 'curl/8']

type Expected = { ok: true } | { ok: false; status: 400 | 431 | 505; detail: string }
const ok: Expected = { ok: true }
const bad = (detail: string, status: 400 | 431 | 505 = 400): Expected => ({ ok: false, status, detail })

const CASES: ReadonlyArray<readonly [string, readonly string[], Expected]> = [
  ['a plain GET passes', BASE, ok],
  ['one Content-Length passes', [...BASE, 'Content-Length', '12'], ok],
  ['Content-Length 0 passes', [...BASE, 'content-length', '0'], ok],
  ['Transfer-Encoding: chunked passes', [...BASE, 'Transfer-Encoding', 'chunked'], ok],
  ['`CHUNKED` passes (case-insensitive)', [...BASE, 'transfer-encoding', 'CHUNKED'], ok],
  [
    'both Content-Length and Transfer-Encoding are refused',
    [...BASE, 'Content-Length', '5', 'Transfer-Encoding', 'chunked'],
    bad('cl_te_conflict'),
  ],
  [
    'the conflict is found whatever the order and case',
    [...BASE, 'TRANSFER-ENCODING', 'chunked', 'content-length', '5'],
    bad('cl_te_conflict'),
  ],
  [
    'duplicate equal Content-Length is refused',
    [...BASE, 'Content-Length', '5', 'Content-Length', '5'],
    bad('duplicate_content_length'),
  ],
  [
    'duplicate differing Content-Length is refused',
    [...BASE, 'Content-Length', '5', 'content-length', '6'],
    bad('duplicate_content_length'),
  ],
  [
    'two Proxy-Authorization headers are refused (which one counts would be ambiguous)',
    [...BASE, 'Proxy-Authorization', 'Basic YTpi', 'proxy-authorization', 'Basic Yzpk'],
    bad('duplicate_proxy_authorization'),
  ],
  ['a Content-Length list is refused', [...BASE, 'Content-Length', '5, 5'], bad('bad_content_length')],
  ['a signed Content-Length is refused', [...BASE, 'Content-Length', '+5'], bad('bad_content_length')],
  ['a negative Content-Length is refused', [...BASE, 'Content-Length', '-1'], bad('bad_content_length')],
  ['a hex Content-Length is refused', [...BASE, 'Content-Length', '0x10'], bad('bad_content_length')],
  ['an empty Content-Length is refused', [...BASE, 'Content-Length', ''], bad('bad_content_length')],
  ['an absurd Content-Length is refused', [...BASE, 'Content-Length', '9'.repeat(20)], bad('bad_content_length')],
  ['`gzip, chunked` is refused', [...BASE, 'Transfer-Encoding', 'gzip, chunked'], bad('bad_transfer_encoding')],
  ['`chunked, identity` is refused', [...BASE, 'Transfer-Encoding', 'chunked, identity'], bad('bad_transfer_encoding')],
  ['`identity` is refused', [...BASE, 'Transfer-Encoding', 'identity'], bad('bad_transfer_encoding')],
  ['`xchunked` is refused', [...BASE, 'Transfer-Encoding', 'xchunked'], bad('bad_transfer_encoding')],
  [
    'duplicate Transfer-Encoding is refused',
    [...BASE, 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'],
    bad('duplicate_transfer_encoding'),
  ],
  ['a header name ending in a space is refused', [...BASE, 'Transfer-Encoding ', 'chunked'], bad('bad_header_name')],
  ['a header name with a tab is refused', [...BASE, 'Content-Length\t', '5'], bad('bad_header_name')],
  ['an empty header name is refused', [...BASE, '', 'x'], bad('bad_header_name')],
  ['a header name with a colon is refused', [...BASE, 'X:Y', 'x'], bad('bad_header_name')],
  ['an obs-fold value is refused', [...BASE, 'X-Long', 'a\r\n b'], bad('bad_header_value')],
  ['a bare LF in a value is refused', [...BASE, 'X-A', 'a\nb'], bad('bad_header_value')],
  ['NUL in a value is refused', [...BASE, 'X-A', 'a\u0000b'], bad('bad_header_value')],
  ['a tab in a value is allowed', [...BASE, 'X-A', 'a\tb'], ok],
  ['an odd raw header list is refused', [...BASE, 'X-A'], bad('bad_header_list')],
  [
    'headers over the byte limit are refused with 431',
    [...BASE, 'X-Big', 'x'.repeat(16 * 1024)],
    bad('headers_too_large', 431),
  ],
  [
    'too many headers are refused with 431',
    Array.from({ length: 201 }, (_, i) => [`X-${i}`, 'v']).flat(),
    bad('too_many_headers', 431),
  ],
]

for (const [behaviour, raw, expected] of CASES) {
  t.test(behaviour, async (t) => {
    t.same(checkRequestHead(raw), expected)
  })
}

t.test('limits can be tightened', async (t) => {
  const tight = (limits: Partial<typeof DEFAULT_REQUEST_HEAD_LIMITS>) =>
    checkRequestHead(BASE, '1.1', { ...DEFAULT_REQUEST_HEAD_LIMITS, ...limits })
  t.same(tight({ maxHeaderBytes: 10 }), bad('headers_too_large', 431))
  t.same(tight({ maxHeaderCount: 1 }), bad('too_many_headers', 431))
})

t.test('Transfer-Encoding in an HTTP/1.0 request is faulty framing (RFC 9112 §6.1)', async (t) => {
  const chunked = [...BASE, 'Transfer-Encoding', 'chunked']
  t.same(checkRequestHead(chunked, '1.0'), bad('transfer_encoding_in_http10'))
  t.same(checkRequestHead(chunked, '1.1'), { ok: true })
  t.same(checkRequestHead([...BASE, 'Content-Length', '5'], '1.0'), { ok: true })
})

t.test('only HTTP/1.0 and 1.1 are read: another version is a 505, never forwarded as 1.1', async (t) => {
  for (const version of ['2.0', '0.9', '1.2', '3.0'])
    t.same(checkRequestHead(BASE, version), bad('http_version_not_supported', 505), version)
  t.same(checkRequestHead(BASE, '1.0'), { ok: true })
})
