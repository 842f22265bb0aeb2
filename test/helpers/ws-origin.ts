import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'
import type { TestCa } from './test-ca.js'

/** A WebSocket echo origin on 127.0.0.1 (plain, or TLS with a test CA's certificate): text frames come back as sent. */
export interface WsOrigin {
  readonly port: number
  /** Upgrade requests that reached it: their paths. */
  readonly upgrades: string[]
  /** Sockets it holds open (to see a relay end). */
  readonly open: () => number
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Encode one unmasked server text frame (payload under 64 KiB). */
export function textFrame(text: string, masked = false): Buffer {
  const payload = Buffer.from(text)
  const head =
    payload.length < 126
      ? Buffer.from([0x81, payload.length])
      : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
  if (!masked) return Buffer.concat([head, payload])
  head[1] = (head[1] as number) | 0x80
  const mask = Buffer.from([1, 2, 3, 4])
  return Buffer.concat([head, mask, payload.map((b, i) => b ^ (mask[i % 4] as number))])
}

/** Decode the first complete frame in `buf` (masked or not); null while incomplete. */
export function readFrame(buf: Buffer): { opcode: number; text: string; size: number } | null {
  if (buf.length < 2) return null
  const masked = ((buf[1] as number) & 0x80) !== 0
  let len = (buf[1] as number) & 0x7f
  let at = 2
  if (len === 126) {
    if (buf.length < 4) return null
    len = buf.readUInt16BE(2)
    at = 4
  }
  const mask = masked ? buf.subarray(at, at + 4) : null
  if (masked) at += 4
  if (buf.length < at + len) return null
  const payload = Buffer.from(buf.subarray(at, at + len))
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return { opcode: (buf[0] as number) & 0x0f, text: payload.toString(), size: at + len }
}

/**
 * `slowMs`: upgrades to paths under `/slow/` get their 101 that much later (a change made while the
 * answer is awaited).
 */
export async function startWsOrigin(
  t: Test,
  ca?: TestCa,
  names: readonly string[] = [],
  opts: { readonly slowMs?: number } = {},
): Promise<WsOrigin> {
  const upgrades: string[] = []
  const sockets = new Set<Socket>()
  const server = ca ? createHttpsServer(ca.issue(names)) : createServer()
  server.on('request', (_req, res) => res.writeHead(426, { 'content-length': 0 }).end())
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    upgrades.push(req.url ?? '')
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.on('end', () => socket.end())
    const accept = createHash('sha1')
      .update(`${String(req.headers['sec-websocket-key'])}${GUID}`)
      .digest('base64')
    const answer = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`
    if (req.url?.startsWith('/slow/') === true) {
      const timer = setTimeout(() => socket.writable && socket.write(answer), opts.slowMs ?? 0)
      socket.on('close', () => clearTimeout(timer))
    } else socket.write(answer)
    let buf = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (let f = readFrame(buf); f !== null; f = readFrame(buf)) {
        buf = buf.subarray(f.size)
        if (f.opcode === 0x8) return void socket.end(Buffer.from([0x88, 0]))
        if (f.opcode === 0x1) socket.write(textFrame(f.text))
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, upgrades, open: () => sockets.size }
}
