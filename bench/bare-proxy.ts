/**
 * A yardstick: a straightforward Node forward proxy on this machine.
 * CONNECT → net.connect + pipeline both ways (no auth, no policy, no SNI
 * check, no logging); absolute-form HTTP → http.request on a keep-alive agent,
 * piped. Dials 127.0.0.1 only, whatever the request names.
 *
 *   node bench/bare-proxy.ts   (prints {"port":…,"pid":…}; exits on SIGTERM or stdin end)
 */
import { once } from 'node:events'
import { Agent, createServer, request } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { pipeline } from 'node:stream'

const agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' })
const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const m = /^http:\/\/[^/:]+:(\d+)(\/.*)?$/.exec(req.url ?? '')
  if (!m) return void res.writeHead(400).end()
  const headers = { ...req.headers }
  delete headers['proxy-authorization']
  delete headers['proxy-connection']
  const up = request({ host: '127.0.0.1', port: Number(m[1]), path: m[2] ?? '/', method: req.method, headers, agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers)
    pipeline(upRes, res, () => undefined)
  })
  up.on('error', () => res.destroy())
  pipeline(req, up, () => undefined)
})
server.on('connect', (req, client: Socket, head: Buffer) => {
  const port = Number(/:(\d+)$/.exec(req.url ?? '')?.[1] ?? 0)
  const up = connect({ host: '127.0.0.1', port, noDelay: true }, () => {
    client.write('HTTP/1.1 200 Connection established\r\n\r\n')
    if (head.length > 0) up.write(head)
    pipeline(client, up, () => client.destroy())
    pipeline(up, client, () => up.destroy())
  })
  up.on('error', () => client.destroy())
  client.on('error', () => up.destroy())
  client.setNoDelay(true)
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const stop = (): void => {
  server.closeAllConnections()
  server.close()
  setTimeout(() => process.exit(0), 200).unref()
}
process.once('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port, pid: process.pid })}\n`)
