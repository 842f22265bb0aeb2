import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { basicAuth } from './clients.js'
import { TOKEN } from './config.js'

/** Open a CONNECT tunnel by hand and return the socket after the proxy's answer head. */
export async function openTunnel(
  port: number,
  authority: string,
  user = 'ci',
  token = TOKEN,
): Promise<{ socket: Socket; head: string }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => undefined)
  socket.write(
    `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${basicAuth(user, token)}\r\n\r\n`,
  )
  let head = ''
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer]
    head += chunk.toString('latin1')
  }
  return { socket, head }
}
