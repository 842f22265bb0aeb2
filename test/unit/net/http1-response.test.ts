import t, { type Test } from 'tap'
import { ResponseParser } from '../../../src/net/http1-response.js'

interface Parsed {
  informational: string[]
  status: number | null
  headers: string[]
  body: string
  ended: boolean
  error: string | null
  reusable: boolean
}

/** Feed `wire` to a fresh parser in pieces of `step` bytes (every split point is tried by the callers). */
function parse(wire: string, opts: { step?: number; head?: boolean; close?: boolean } = {}): Parsed {
  const out: Parsed = {
    informational: [],
    status: null,
    headers: [],
    body: '',
    ended: false,
    error: null,
    reusable: false,
  }
  const p = new ResponseParser(
    {
      informational(status, headers) {
        out.informational.push(`${status} ${headers.join(': ')}`)
      },
      head(status, headers) {
        out.status = status
        out.headers = headers
      },
      body(chunk) {
        out.body += chunk.toString('latin1')
      },
      end() {
        out.ended = true
      },
    },
    1024,
  )
  p.begin(opts.head === true)
  const bytes = Buffer.from(wire, 'latin1')
  const step = opts.step ?? bytes.length
  for (let at = 0; at < bytes.length && out.error === null; at += step) {
    const err = p.execute(bytes.subarray(at, at + step))
    if (err !== null) out.error = (err as { code: string }).code
  }
  if (opts.close === true && out.error === null) {
    const err = p.finish()
    if (err !== null) out.error = (err as { code?: string }).code ?? 'closed'
  }
  out.reusable = p.reusable
  return out
}

/** The same wire, whole and in every piece size down to one byte, must parse the same. */
function parseEveryWay(t: Test, wire: string, opts: { head?: boolean; close?: boolean } = {}): Parsed {
  const whole = parse(wire, opts)
  for (let step = 1; step < wire.length; step++) {
    const split = parse(wire, { ...opts, step })
    if (JSON.stringify(split) !== JSON.stringify(whole)) {
      t.same(split, whole, `read ${step} bytes at a time`)
      break
    }
  }
  return whole
}

t.test('framed answers: length, chunked, none, and until the close', async (t) => {
  const cl = parseEveryWay(t, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  v \r\n\r\nhello')
  t.same(cl, {
    informational: [],
    status: 200,
    headers: ['Content-Length', '5', 'X-A', 'v'],
    body: 'hello',
    ended: true,
    error: null,
    reusable: true,
  })

  const chunked = parseEveryWay(
    t,
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: t\r\n\r\n',
  )
  t.match(chunked, { status: 200, body: 'hello world', ended: true, error: null, reusable: true })

  t.match(parseEveryWay(t, 'HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n'), {
    status: 204,
    body: '',
    ended: true,
    reusable: true,
  })
  t.match(parseEveryWay(t, 'HTTP/1.1 304 Not Modified\r\n\r\n'), { ended: true, reusable: true })
  t.match(
    parseEveryWay(t, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', { head: true }),
    { status: 200, body: '', ended: true, reusable: true },
    'an answer to HEAD has no body',
  )
  t.match(
    parseEveryWay(t, 'HTTP/1.1 200 OK\r\n\r\nuntil the end', { close: true }),
    { body: 'until the end', ended: true, reusable: false },
    'neither length nor chunked: the body runs to the close, and the connection goes with it',
  )
  t.match(
    parseEveryWay(
      t,
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ),
    {
      informational: ['100 ', '103 Link: </a>'],
      status: 200,
      headers: ['Content-Length', '2'],
      body: 'ok',
      ended: true,
    },
    '1xx heads are reported as such, then the final answer',
  )
  t.match(
    parseEveryWay(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, close\r\n\r\nok'),
    { ended: true, reusable: false },
    'Connection: close',
  )
  for (const [field, reusable] of [
    ['close', false],
    [' Close ', false],
    ['keep-alive', true],
    ['closed', true],
    ['upgrade,\tCLOSE', false],
  ] as const)
    t.match(
      parseEveryWay(t, `HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection:${field}\r\n\r\nok`),
      { ended: true, reusable },
      `Connection:${field}`,
    )
  t.match(parseEveryWay(t, 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'), { ended: true, reusable: false })
  t.match(
    parseEveryWay(t, 'HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n'),
    { status: 404, ended: true },
    'no reason phrase',
  )
})

t.test('ambiguous or malformed answers are refused', async (t) => {
  const refused: [string, string, string][] = [
    ['not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/2 status line', 'HTTP/2 200\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['a bare LF inside the head', 'HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nA: b\0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    [
      'two Content-Lengths, even equal',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
      'HPE_UNEXPECTED_CONTENT_LENGTH',
    ],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['a signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    [
      'chunked with a Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'HPE_UNEXPECTED_CONTENT_LENGTH',
    ],
    [
      'a transfer coding besides chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      'HPE_INVALID_TRANSFER_ENCODING',
    ],
    [
      'chunked twice',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'HPE_INVALID_TRANSFER_ENCODING',
    ],
    [
      'chunked in HTTP/1.0',
      'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'HPE_UNEXPECTED_CONTENT_LENGTH',
    ],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    [
      'a chunk size past 13 hex digits (not exact as a double)',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20000000000001\r\n',
      'HPE_INVALID_CHUNK_SIZE',
    ],
    ['a chunk size with a bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n', 'HPE_STRICT'],
    [
      'chunk data longer than its size',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n',
      'HPE_STRICT',
    ],
    ['a protocol switch nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', 'HPE_UNEXPECTED_UPGRADE'],
    [
      'bytes after the answer',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n',
      'HPE_DATA_AFTER_RESPONSE',
    ],
    ['a head past the limit', `HTTP/1.1 200 OK\r\nA: ${'a'.repeat(1100)}\r\n\r\n`, 'HPE_HEADER_OVERFLOW'],
  ]
  for (const [what, wire, code] of refused) {
    const r = parseEveryWay(t, wire)
    t.equal(r.error, code, what)
    t.notOk(r.reusable, `${what}: the connection is not reused`)
  }
  t.match(
    parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n'),
    { ended: true, body: 'x' },
    'the answer before the stray bytes was whole',
  )
})

t.test('a close before the answer is complete is an error, not an answer', async (t) => {
  t.match(parse('', { close: true }), { error: 'UPSTREAM_CLOSED', ended: false })
  t.match(parse('HTTP/1.1 200 OK\r\nContent-Le', { close: true }), { error: 'UPSTREAM_CLOSED', ended: false })
  t.match(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel', { close: true }), {
    status: 200,
    body: 'hel',
    error: 'UPSTREAM_CLOSED',
    ended: false,
  })
  t.match(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', { close: true }), {
    error: 'UPSTREAM_CLOSED',
    ended: false,
  })
})

t.test('a parser carries one answer after another on a kept-alive connection', async (t) => {
  const bodies: string[] = []
  let ends = 0
  const p = new ResponseParser(
    {
      informational: () => undefined,
      head: () => undefined,
      body: (c) => bodies.push(c.toString()),
      end: () => void ends++,
    },
    1024,
  )
  for (const body of ['one', 'two']) {
    p.begin(false)
    t.equal(p.execute(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n${body}`)), null)
    t.ok(p.reusable)
  }
  t.same(bodies, ['one', 'two'])
  t.equal(ends, 2)
})
