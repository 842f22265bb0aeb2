import { once } from 'node:events'
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { TOKEN } from './config.js'
import { run } from './spawn.js'

export interface CurlResult {
  readonly exitCode: number
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
  readonly stderr: string
}

/** Run curl with the given args plus `-sS -i`; parses the last response's status line and headers. */
export async function curl(args: readonly string[], timeoutMs = 20_000): Promise<CurlResult> {
  // curl's own --max-time ends it; the kill is a backstop.
  const r = await run('curl', ['-sS', '-i', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args], {
    timeoutMs: timeoutMs + 5000,
  })
  const text = r.stdout
  // -i prints every response (e.g. the CONNECT's 200 then the origin's); keep the last head.
  const heads = [...text.matchAll(/HTTP\/[\d.]+ (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/g)]
  const last = heads.at(-1)
  const headers: Record<string, string> = {}
  for (const line of (last?.[2] ?? '').split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  const body = last ? text.slice((last.index ?? 0) + last[0].length) : text
  return { exitCode: r.code ?? -1, status: last ? Number(last[1]) : 0, headers, body, stderr: r.stderr }
}

/** A raw TCP exchange with the proxy: write `data`, collect everything until the peer closes or timeoutMs. */
export async function rawExchange(
  port: number,
  data: string | Buffer,
  timeoutMs = 5000,
): Promise<{ response: string; closed: boolean }> {
  const socket: Socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.write(data)
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(true)
    })
    socket.on('error', () => undefined)
  })
  socket.destroy()
  return { response: Buffer.concat(chunks).toString('latin1'), closed }
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}

export interface ProxiedAnswer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/**
 * One absolute-form GET of `url` through the proxy on 127.0.0.1:proxyPort, as `user`, on a
 * connection of its own (no pool: each request stands alone, and with workers round-robin spreads
 * them). Bounded: 10 s without a socket event fails it.
 */
export function proxiedGet(
  proxyPort: number,
  url: string,
  user = 'ci',
  password = TOKEN,
  headers: OutgoingHttpHeaders = {},
): Promise<ProxiedAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: url,
        agent: false,
        headers: { host: new URL(url).host, 'proxy-authorization': basicAuth(user, password), ...headers },
        timeout: 10_000,
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/**
 * Write `text` one character every `everyMs` until the peer closes (a slowloris client); what the
 * peer answered and how long it took to close. Bounded: the peer must close within `timeoutMs`.
 */
export async function trickleUntilClosed(
  socket: Duplex,
  text: string,
  everyMs = 50,
  timeoutMs = 15_000,
): Promise<{ answer: string; elapsedMs: number }> {
  const started = Date.now()
  socket.on('error', () => undefined)
  const answer: Buffer[] = []
  socket.on('data', (c: Buffer) => answer.push(c))
  let i = 0
  const timer = setInterval(() => {
    if (i < text.length && !socket.destroyed) socket.write(text[i++] as string)
  }, everyMs)
  const guard = setTimeout(() => socket.destroy(), timeoutMs)
  await once(socket, 'close')
  clearInterval(timer)
  clearTimeout(guard)
  return { answer: Buffer.concat(answer).toString('latin1'), elapsedMs: Date.now() - started }
}
