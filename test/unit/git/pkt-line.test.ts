import t from 'tap'
import {
  chompLf,
  encodePktLine,
  encodeSideBand,
  PKT_MAX_LEN,
  PKT_MAX_PAYLOAD,
  readPktLine,
} from '../../../src/git/pkt-line.js'

const b = (s: string) => Buffer.from(s, 'latin1')

t.test('reads data packets, gitprotocol-common examples', async (t) => {
  const cases: [string, string][] = [
    ['0006a\n', 'a\n'],
    ['0005a', 'a'],
    ['000bfoobar\n', 'foobar\n'],
    ['0004', ''],
    ['000BFOOBAR\n', 'FOOBAR\n'], // upper-case hex, as git's reader accepts
  ]
  for (const [wire, payload] of cases) {
    const r = readPktLine(b(wire), 0)
    t.matchOnly(r, { kind: 'packet', packet: { kind: 'data', payload: b(payload) }, next: wire.length }, wire)
  }
})

t.test('reads the special packets 0000, 0001 and 0002', async (t) => {
  t.matchOnly(readPktLine(b('0000'), 0), { kind: 'packet', packet: { kind: 'flush' }, next: 4 })
  t.matchOnly(readPktLine(b('0001'), 0), { kind: 'packet', packet: { kind: 'delim' }, next: 4 })
  t.matchOnly(readPktLine(b('0002'), 0), { kind: 'packet', packet: { kind: 'response_end' }, next: 4 })
})

t.test('reads at an offset and reports where the next packet starts', async (t) => {
  const wire = b('0006a\n0000')
  const first = readPktLine(wire, 0)
  t.equal(first.kind, 'packet')
  t.matchOnly(readPktLine(wire, 6), { kind: 'packet', packet: { kind: 'flush' }, next: 10 })
})

t.test('length 3 is reserved and invalid', async (t) => {
  t.matchOnly(readPktLine(b('0003'), 0), { kind: 'invalid', detail: 'reserved_length' })
})

t.test('a length past 65520 is too long', async (t) => {
  t.matchOnly(readPktLine(b('fff1'), 0), { kind: 'invalid', detail: 'too_long' })
  t.matchOnly(readPktLine(b('ffff'), 0), { kind: 'invalid', detail: 'too_long' })
})

t.test('a length of exactly 65520 is accepted', async (t) => {
  const wire = Buffer.concat([b('fff0'), Buffer.alloc(PKT_MAX_LEN - 4, 0x61)])
  const r = readPktLine(wire, 0)
  t.equal(r.kind, 'packet')
})

t.test('non-hex length digits are invalid, even before four have arrived', async (t) => {
  for (const wire of ['00g4', 'zz', '+004', ' 004', '0x04']) {
    t.matchOnly(readPktLine(b(wire), 0), { kind: 'invalid', detail: 'bad_length' }, wire)
  }
})

t.test('an incomplete packet is need_more', async (t) => {
  for (const wire of ['', '0', '000', '0006', '0006a', '000bfoo']) {
    t.matchOnly(readPktLine(b(wire), 0), { kind: 'need_more' }, JSON.stringify(wire))
  }
})

t.test('chompLf strips exactly one trailing LF', async (t) => {
  t.same(chompLf(b('a\n')), b('a'))
  t.same(chompLf(b('a\n\n')), b('a\n'))
  t.same(chompLf(b('a')), b('a'))
  t.same(chompLf(b('')), b(''))
})

t.test('encodePktLine round-trips and refuses oversized payloads', async (t) => {
  t.same(encodePktLine('a\n'), b('0006a\n'))
  t.same(encodePktLine(''), b('0004'))
  const max = encodePktLine(Buffer.alloc(PKT_MAX_PAYLOAD, 0x62))
  t.equal(max.length, PKT_MAX_LEN)
  t.equal(max.subarray(0, 4).toString(), 'fff0')
  t.throws(() => encodePktLine(Buffer.alloc(PKT_MAX_PAYLOAD + 1)))
})

t.test('encodeSideBand cuts data into band packets no longer than the limit', async (t) => {
  const data = Buffer.alloc(2500, 0x78)
  for (const max of [1000, PKT_MAX_LEN]) {
    const wire = encodeSideBand(1, data, max)
    const got: Buffer[] = []
    let off = 0
    for (let i = 0; i < 10 && off < wire.length; i++) {
      const r = readPktLine(wire, off)
      if (r.kind !== 'packet' || r.packet.kind !== 'data') throw new Error('bad side-band framing')
      t.ok(r.next - off <= max, `packet within ${max}`)
      t.equal(r.packet.payload[0], 1)
      got.push(r.packet.payload.subarray(1))
      off = r.next
    }
    t.equal(off, wire.length)
    t.same(Buffer.concat(got), data)
  }
  t.equal(encodeSideBand(2, Buffer.alloc(0), 1000).length, 0)
  t.throws(() => encodeSideBand(1, data, PKT_MAX_LEN + 1))
})
