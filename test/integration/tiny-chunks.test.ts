import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { basicAuth } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'

/**
 * A body of 1-byte chunks, either way: the proxy re-frames it (it never passes a client's chunking
 * on), and it must not spend a write per chunk doing so. A write per chunk made 1 MB of 1-byte chunks
 * cost the proxy 22 s of CPU uploading and 6.6 s downloading. Seen from outside: the far side gets the
 * same bytes in far fewer chunks than were sent. (CPU is measured in bench/, not here.)
 */
const CHUNKS = 20_000
const piece = (i: number): Buffer => Buffer.from(`1\r\n${String.fromCharCode(97 + (i % 26))}\r\n`, 'latin1')
const TINY_BODY = Buffer.concat(Array.from({ length: CHUNKS }, (_, i) => piece(i)))
const PAYLOAD = Buffer.from(Array.from({ length: CHUNKS }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''))

/** The chunk sizes of a chunked body (whose last chunk is 0), and its data; null while incomplete. */
function dechunk(wire: Buffer): { sizes: number[]; data: Buffer } | null {
  const sizes: number[] = []
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = wire.indexOf('\r\n', at)
    if (eol < 0) return null
    const size = parseInt(wire.subarray(at, eol).toString('latin1'), 16)
    if (size === 0) return wire.length >= eol + 4 ? { sizes, data: Buffer.concat(parts) } : null
    if (wire.length < eol + 2 + size + 2) return null
    sizes.push(size)
    parts.push(wire.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}

/** Reads one request or answer: its head, then a chunked body to its end. */
function readChunked(sock: Socket): Promise<{ head: string; sizes: number[]; data: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const body = dechunk(buf.subarray(end + 4))
      if (body === null) return
      sock.removeListener('data', onData)
      resolve({ head: buf.subarray(0, end).toString('latin1'), ...body })
    }
    sock.on('data', onData)
    sock.once('error', reject)
    sock.once('close', () => reject(new Error(`closed after ${buf.length} bytes`)))
  })
}

async function rawOrigin(t: Test, onRequest: (sock: Socket) => void): Promise<number> {
  const server = createServer(onRequest)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return (server.address() as AddressInfo).port
}

async function proxyFor(t: Test, port: number): Promise<number> {
  const pc = await startPortcullis(t, originOnlyYaml([port]))
  return pc.proxyPort
}

async function client(t: Test, proxyPort: number): Promise<Socket> {
  const sock = connect(proxyPort, '127.0.0.1')
  t.teardown(() => sock.destroy())
  await once(sock, 'connect')
  return sock
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('an upload of 1-byte chunks reaches the origin intact, in far fewer chunks', async (t) => {
  let seen: Promise<{ head: string; sizes: number[]; data: Buffer }> | null = null
  const port = await rawOrigin(t, (sock) => {
    seen = readChunked(sock)
    void seen.then(
      () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'),
      () => sock.destroy(),
    )
  })
  const sock = await client(t, await proxyFor(t, port))
  sock.write(
    `POST http://origin.test:${port}/up HTTP/1.1\r\nHost: origin.test:${port}\r\n` +
      `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nTransfer-Encoding: chunked\r\n\r\n`,
  )
  sock.write(Buffer.concat([TINY_BODY, Buffer.from('0\r\n\r\n')]))
  let answer = ''
  await new Promise<void>((resolve) =>
    sock.on('data', (c: Buffer) => {
      answer += c.toString('latin1')
      if (answer.endsWith('\r\n\r\nok')) resolve()
    }),
  )
  t.match(answer, /^HTTP\/1\.1 200 /)
  t.ok(seen !== null, 'the origin was asked')
  const got = await (seen as unknown as Promise<{ head: string; sizes: number[]; data: Buffer }>)
  t.match(got.head, /^POST \/up HTTP\/1\.1\r\n/i)
  t.equal(sha(got.data), sha(PAYLOAD), 'every byte, in order')
  t.ok(got.sizes.length < CHUNKS / 20, `${CHUNKS} chunks sent, ${got.sizes.length} forwarded`)
})

t.test('a download of 1-byte chunks reaches the client intact, in far fewer chunks', async (t) => {
  const port = await rawOrigin(t, (sock) => {
    sock.once('data', () => {
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n')
      sock.write(TINY_BODY)
      sock.write('0\r\n\r\n')
    })
    sock.on('error', () => sock.destroy())
  })
  const sock = await client(t, await proxyFor(t, port))
  sock.write(
    `GET http://origin.test:${port}/down HTTP/1.1\r\nHost: origin.test:${port}\r\n` +
      `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n\r\n`,
  )
  const got = await readChunked(sock)
  t.match(got.head, /^HTTP\/1\.1 200 /)
  t.equal(sha(got.data), sha(PAYLOAD), 'every byte, in order')
  t.ok(got.sizes.length < CHUNKS / 20, `${CHUNKS} chunks sent, ${got.sizes.length} delivered`)
})
