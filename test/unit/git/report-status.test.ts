import t from 'tap'
import { chompLf, PKT_MAX_LEN, readPktLine } from '../../../src/git/pkt-line.js'
import {
  buildRefusal,
  MAX_MESSAGE_BYTES,
  MAX_REASON_BYTES,
  RECEIVE_PACK_RESULT_TYPE,
  sanitizeReason,
  type RefusalRequest,
} from '../../../src/git/report-status.js'

/** Split a pkt-line stream into text lines ('0000' for a flush); fails on anything else. */
function pktLines(wire: Buffer): string[] {
  const out: string[] = []
  let off = 0
  for (let i = 0; i < 10_000 && off < wire.length; i++) {
    const r = readPktLine(wire, off)
    if (r.kind !== 'packet') throw new Error(`bad pkt stream at ${off}: ${r.kind}`)
    out.push(r.packet.kind === 'data' ? chompLf(r.packet.payload).toString('utf8') : r.packet.kind)
    off = r.next
  }
  if (off !== wire.length) throw new Error('trailing bytes')
  return out
}

/** Demultiplex a side-band stream: bytes per band, the size of the largest packet, and whether it ended with a flush. */
function demux(wire: Buffer) {
  const bands = new Map<number, Buffer[]>()
  let largest = 0
  let off = 0
  let flushed = false
  for (let i = 0; i < 10_000 && off < wire.length; i++) {
    const r = readPktLine(wire, off)
    if (r.kind !== 'packet') throw new Error('bad side-band stream')
    if (r.packet.kind === 'flush') flushed = r.next === wire.length
    else if (r.packet.kind === 'data') {
      largest = Math.max(largest, r.next - off)
      const band = r.packet.payload[0]!
      bands.set(band, [...(bands.get(band) ?? []), r.packet.payload.subarray(1)])
    }
    off = r.next
  }
  return { band: (n: number) => Buffer.concat(bands.get(n) ?? []), bands: [...bands.keys()], largest, flushed }
}

function bodyOf(req: RefusalRequest): Buffer {
  const a = buildRefusal(req)
  if (a.kind !== 'report') throw new Error('expected a report')
  t.equal(a.contentType, RECEIVE_PACK_RESULT_TYPE)
  return a.body
}

const refs = [
  { ref: 'refs/heads/main', reason: 'portcullis: not allowed' },
  { ref: 'refs/heads/agent/x', reason: 'portcullis: refused with the rest of the push' },
]

t.test('without side band the body is the bare report: unpack ok, one ng per ref, flush', async (t) => {
  const body = bodyOf({ sideBand: 'none', reportStatus: 'report-status', refs })
  t.same(pktLines(body), [
    'unpack ok',
    'ng refs/heads/main portcullis: not allowed',
    'ng refs/heads/agent/x portcullis: refused with the rest of the push',
    'flush',
  ])
})

t.test('report-status-v2 gets the same ng lines as v1', async (t) => {
  const v1 = bodyOf({ sideBand: 'side-band-64k', reportStatus: 'report-status', refs })
  const v2 = bodyOf({ sideBand: 'side-band-64k', reportStatus: 'report-status-v2', refs })
  t.same(v2, v1)
})

t.test('side-band-64k: message on band 2 first, report on band 1, then a flush', async (t) => {
  const body = bodyOf({
    sideBand: 'side-band-64k',
    reportStatus: 'report-status-v2',
    refs,
    message: 'line one\nline two',
  })
  const d = demux(body)
  t.same(d.bands, [2, 1])
  t.equal(d.band(2).toString(), 'line one\nline two\n')
  t.same(pktLines(d.band(1)), [
    'unpack ok',
    'ng refs/heads/main portcullis: not allowed',
    'ng refs/heads/agent/x portcullis: refused with the rest of the push',
    'flush',
  ])
  t.ok(d.flushed, 'the side-band stream ends with a flush')
})

t.test('side-band (not 64k) keeps every packet within 1000 bytes', async (t) => {
  const many = Array.from({ length: 40 }, (_, i) => ({ ref: `refs/heads/b${i}`, reason: 'x'.repeat(200) }))
  const d = demux(
    bodyOf({ sideBand: 'side-band', reportStatus: 'report-status', refs: many, message: 'y'.repeat(3000) }),
  )
  t.ok(d.largest <= 1000, `largest packet ${d.largest}`)
  t.equal(pktLines(d.band(1)).length, 42)
  t.equal(d.band(2).length, 3001)
})

t.test('side-band-64k packets stay within 65520 bytes for a large report', async (t) => {
  const many = Array.from({ length: 400 }, (_, i) => ({ ref: `refs/heads/b${i}`, reason: 'x'.repeat(400) }))
  const d = demux(bodyOf({ sideBand: 'side-band-64k', reportStatus: 'report-status', refs: many }))
  t.ok(d.largest <= PKT_MAX_LEN)
  t.ok(d.largest > 1000, 'and uses the room it has')
  t.equal(pktLines(d.band(1)).length, 402)
})

t.test('no message, no band 2', async (t) => {
  t.same(demux(bodyOf({ sideBand: 'side-band-64k', reportStatus: 'report-status', refs })).bands, [1])
  t.same(demux(bodyOf({ sideBand: 'side-band-64k', reportStatus: 'report-status', refs, message: '\n\n' })).bands, [1])
})

t.test('a client that asked for no report-status gets http_error', async (t) => {
  t.matchOnly(buildRefusal({ sideBand: 'side-band-64k', reportStatus: 'none', refs }), { kind: 'http_error' })
})

t.test('reasons become one bounded line of text', async (t) => {
  const cases: [string, string][] = [
    ['a\nb\r\nc', 'a b c'],
    ['tab\there', 'tab here'],
    ['esc \x1b[31mred', 'esc [31mred'],
    ['  padded  ', 'padded'],
    ['', 'refused'],
    ['\n\n', 'refused'],
    ['nel\u0085ls\u2028ps\u2029', 'nel ls ps'],
  ]
  // Names by index: a raw U+2028 in a test name would break the TAP stream itself.
  cases.forEach(([input, want], i) => t.equal(sanitizeReason(input), want, `case ${i}`))
  t.equal(Buffer.byteLength(sanitizeReason('z'.repeat(5000))), MAX_REASON_BYTES)
  // A multi-byte character is never cut in half.
  const cut = sanitizeReason('é'.repeat(400))
  t.equal(cut, 'é'.repeat(MAX_REASON_BYTES / 2))
  t.notMatch(cut, '\ufffd')
})

t.test('a hostile reason cannot add lines to the report', async (t) => {
  const body = bodyOf({
    sideBand: 'none',
    reportStatus: 'report-status',
    refs: [{ ref: 'refs/heads/main', reason: 'no\n0010ok refs/heads/main\n' }],
  })
  const lines = pktLines(body)
  t.equal(lines.length, 3)
  t.match(lines[1], /^ng refs\/heads\/main no 0010ok refs\/heads\/main$/)
})

t.test('messages keep their lines but lose control characters and are bounded', async (t) => {
  const d = demux(
    bodyOf({
      sideBand: 'side-band-64k',
      reportStatus: 'report-status',
      refs,
      message: 'one\x07\n\x1b[2Jtwo\n' + 'w'.repeat(9000),
    }),
  )
  const text = d.band(2).toString()
  t.match(text, /^one\n \[2Jtwo\nw+\n$/)
  t.ok(Buffer.byteLength(text) <= MAX_MESSAGE_BYTES)
})
