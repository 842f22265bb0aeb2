import { Duplex } from 'node:stream'
import { connect } from 'node:tls'
import t from 'tap'
import { CLIENT_HELLO_MAX_BYTES, parseClientHello } from '../../../src/tls/client-hello.js'

/**
 * A real ClientHello from Node's TLS stack, captured from an in-memory duplex:
 * nothing touches the network.
 */
async function captureHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const chunks: Buffer[] = []
  let done: (b: Buffer) => void = () => {}
  const captured = new Promise<Buffer>((resolve) => (done = resolve))
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk)
      done(Buffer.concat(chunks))
      cb()
    },
  })
  const socket = connect({ socket: wire, rejectUnauthorized: false, ...options })
  socket.on('error', () => {})
  const hello = await captured
  socket.destroy()
  wire.destroy()
  return hello
}

/** Re-frame a single-record hello's handshake bytes into records of `size` bytes. */
function splitIntoRecords(hello: Buffer, size: number): Buffer {
  const hs = hello.subarray(5, 5 + hello.readUInt16BE(3))
  const out: Buffer[] = []
  for (let i = 0; i < hs.length; i += size) {
    const part = hs.subarray(i, i + size)
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0])
    header.writeUInt16BE(part.length, 3)
    out.push(header, part)
  }
  return Buffer.concat(out)
}

/** Build a minimal ClientHello by hand, with chosen extensions. */
function buildHello(extensions: Buffer | null): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0]), // session id
    Buffer.from([0, 2, 0x13, 0x01]), // one cipher suite
    Buffer.from([1, 0]), // null compression
    extensions === null ? Buffer.alloc(0) : Buffer.concat([u16(extensions.length), extensions]),
  ])
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body])
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(hs.length), hs])
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function ext(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data])
}

function sniExt(...names: string[]): Buffer {
  const entries = Buffer.concat(
    names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n, 'latin1')])),
  )
  return ext(0, Buffer.concat([u16(entries.length), entries]))
}

function alpnExt(...protos: string[]): Buffer {
  const list = Buffer.concat(protos.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])))
  return ext(16, Buffer.concat([u16(list.length), list]))
}

t.test('real Node ClientHello', async (t) => {
  const hello = await captureHello({ servername: 'example.com', ALPNProtocols: ['h2', 'http/1.1'] })

  t.test('yields SNI and ALPN', async (t) => {
    t.same(parseClientHello(hello), { kind: 'hello', sni: 'example.com', alpn: ['h2', 'http/1.1'] })
  })

  t.test('every strict prefix needs more', async (t) => {
    for (let n = 0; n < hello.length; n++) {
      const r = parseClientHello(hello.subarray(0, n))
      if (r.kind !== 'need_more') return t.fail(`prefix ${n} gave ${r.kind}`)
    }
    t.pass()
  })

  t.test('trailing bytes after the hello are ignored', async (t) => {
    t.match(parseClientHello(Buffer.concat([hello, Buffer.from('junk')])), { kind: 'hello', sni: 'example.com' })
  })

  for (const size of [1, 3, 4, 5, 100]) {
    t.test(`a hello split into ${size}-byte records is reassembled`, async (t) => {
      t.same(parseClientHello(splitIntoRecords(hello, size)), {
        kind: 'hello',
        sni: 'example.com',
        alpn: ['h2', 'http/1.1'],
      })
    })
  }

  t.test('a split hello missing its last record needs more', async (t) => {
    const split = splitIntoRecords(hello, 100)
    const lastRecord = 5 + (hello.readUInt16BE(3) % 100 || 100)
    t.same(parseClientHello(split.subarray(0, split.length - lastRecord)), { kind: 'need_more' })
  })

  t.test('a non-handshake record between fragments is not TLS', async (t) => {
    const split = splitIntoRecords(hello, 100)
    const mixed = Buffer.from(split)
    mixed[105] = 0x17 // second record becomes application data
    t.same(parseClientHello(mixed), { kind: 'not_tls' })
  })

  t.test('fuzzed bytes never throw and never claim a different SNI', async (t) => {
    let seed = 0x2545f491
    const rand = (n: number): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    for (let i = 0; i < 5000; i++) {
      const copy = Buffer.from(hello)
      for (let k = 0; k < 1 + rand(4); k++) copy[rand(copy.length)] = rand(256)
      const cut = copy.subarray(0, rand(copy.length + 1))
      const r = parseClientHello(rand(2) === 0 ? copy : cut)
      if (r.kind === 'hello' && r.sni !== null && r.sni.length > 'example.com'.length) {
        return t.fail(`fuzz case ${i} produced sni ${r.sni}`)
      }
    }
    t.pass()
  })
})

t.test('a hello without SNI has sni null', async (t) => {
  const hello = await captureHello({ ALPNProtocols: ['http/1.1'] })
  t.same(parseClientHello(hello), { kind: 'hello', sni: null, alpn: ['http/1.1'] })
})

t.test('a hello without ALPN has an empty list', async (t) => {
  const hello = await captureHello({ servername: 'example.org' })
  t.same(parseClientHello(hello), { kind: 'hello', sni: 'example.org', alpn: [] })
})

const CRAFTED: ReadonlyArray<readonly [string, Buffer, ReturnType<typeof parseClientHello>]> = [
  ['a hello with no extensions block is parsed', buildHello(null), { kind: 'hello', sni: null, alpn: [] }],
  ['an empty extensions block is parsed', buildHello(Buffer.alloc(0)), { kind: 'hello', sni: null, alpn: [] }],
  [
    'the SNI is returned as sent (the caller normalises)',
    buildHello(sniExt('EXAMPLE.com.')),
    { kind: 'hello', sni: 'EXAMPLE.com.', alpn: [] },
  ],
  [
    'two SNI extensions are refused',
    buildHello(Buffer.concat([sniExt('a.com'), sniExt('b.com')])),
    { kind: 'not_tls' },
  ],
  ['two host_names in one SNI are refused', buildHello(sniExt('a.com', 'b.com')), { kind: 'not_tls' }],
  ['an empty host_name is refused', buildHello(sniExt('')), { kind: 'not_tls' }],
  [
    'an SNI list length past its extension is refused',
    buildHello(ext(0, Buffer.from([0, 9, 0, 0, 1, 0x61]))),
    { kind: 'not_tls' },
  ],
  [
    'an SNI list shorter than its extension is refused',
    buildHello(ext(0, Buffer.from([0, 4, 0, 0, 1, 0x61, 0]))),
    { kind: 'not_tls' },
  ],
  ['an ALPN entry of length 0 is refused', buildHello(ext(16, Buffer.from([0, 1, 0]))), { kind: 'not_tls' }],
  ['an empty ALPN list is refused', buildHello(ext(16, Buffer.from([0, 0]))), { kind: 'not_tls' }],
  [
    'ALPN alongside SNI is returned',
    buildHello(Buffer.concat([sniExt('a.com'), alpnExt('h2')])),
    { kind: 'hello', sni: 'a.com', alpn: ['h2'] },
  ],
  ['an extension length past the block is refused', buildHello(Buffer.from([0, 0, 0, 50, 0])), { kind: 'not_tls' }],
  [
    'unknown extensions are skipped',
    buildHello(Buffer.concat([ext(0xfe0d, Buffer.alloc(10)), sniExt('a.com')])),
    { kind: 'hello', sni: 'a.com', alpn: [] },
  ],
  ['HTTP is not TLS', Buffer.from('GET / HTTP/1.1\r\n\r\n'), { kind: 'not_tls' }],
  ['an SSLv2-style hello is not TLS', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]), { kind: 'not_tls' }],
  ['a wrong record version is not TLS', Buffer.from([0x16, 0x02, 0x00, 0x00, 0x10]), { kind: 'not_tls' }],
  ['one handshake byte needs more', Buffer.from([0x16]), { kind: 'need_more' }],
  ['an empty buffer needs more', Buffer.alloc(0), { kind: 'need_more' }],
  ['a zero-length record is not TLS', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), { kind: 'not_tls' }],
  ['a record over 2^14 bytes is not TLS', Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), { kind: 'not_tls' }],
  [
    'a ServerHello is not a ClientHello',
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]),
    { kind: 'not_tls' },
  ],
  [
    'a hello declaring more than 64 KiB is not TLS',
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]),
    { kind: 'not_tls' },
  ],
  [
    'a hello whose body is too short for its fields is not TLS',
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0x03, 0x03]),
    { kind: 'not_tls' },
  ],
]
for (const [behaviour, buf, expected] of CRAFTED) {
  t.test(behaviour, async (t) => {
    t.same(parseClientHello(buf), expected)
  })
}

t.test('a body with bytes after the extensions is refused', async (t) => {
  const hello = buildHello(sniExt('a.com'))
  const hs = Buffer.concat([hello.subarray(5), Buffer.from([0])])
  hs.writeUIntBE(hs.length - 4, 1, 3)
  t.same(parseClientHello(Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs])), { kind: 'not_tls' })
})

t.test('waiting stops at CLIENT_HELLO_MAX_BYTES', async (t) => {
  // A hello declaring 60 KiB, fed in 1-byte records: never complete within the bound.
  const head = Buffer.from([0x01, 0x00, 0xf0, 0x00])
  const records: Buffer[] = []
  let size = 0
  for (let i = 0; size < CLIENT_HELLO_MAX_BYTES; i++) {
    const rec = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, head[i] ?? 0])
    records.push(rec)
    size += rec.length
  }
  const all = Buffer.concat(records)
  t.same(parseClientHello(all.subarray(0, CLIENT_HELLO_MAX_BYTES - 6)), { kind: 'need_more' })
  t.same(parseClientHello(all), { kind: 'not_tls' })
})
