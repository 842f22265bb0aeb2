import { once } from 'node:events'
import { connect } from 'node:net'
import t from 'tap'
import { basicAuth, proxiedGet } from '../helpers/clients.js'
import { TOKEN, groupYaml, pinnedUpstreamYaml } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/**
 * A client that pipelines requests behind a slow one and reads nothing is not read further once a
 * few dozen are queued (server.ts MAX_QUEUED_REQUESTS): it took 27 MB of requests in 1.5 s and held
 * up to 1 GB of them. Once the answers flow, the rest is read and answered, in order.
 */
t.test('a deep pipeline behind a slow answer is read only as the queue allows', async (t) => {
  let release: () => void = () => undefined
  const slowDone = new Promise<void>((r) => (release = r))
  const origin = await startHttpOrigin(t, (req, res) => {
    const answer = (): void => void res.end(`ok ${req.url}\n`)
    if (req.url === '/slow') void slowDone.then(answer)
    else answer()
  })
  // The head deadline well past the slow answer: a head cut in two by the pause waits for it (see server.ts).
  const pc = await startPortcullis(
    t,
    `${pinnedUpstreamYaml({ ports: [origin.port], hosts: ['origin.test'], timeouts: { header: 10_000 } })}${groupYaml(['host: origin.test'])}`,
  )
  const head = (path: string): string =>
    `GET http://origin.test:${origin.port}${path} HTTP/1.1\r\nHost: origin.test\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nX-Pad: ${PAD}\r\n\r\n`
  // 2 KiB a request, 40 MB in all: far more than loopback's kernel buffers can hold for the proxy.
  const PAD = 'p'.repeat(2000)
  const COUNT = 20_000
  const flood = Buffer.from(head('/slow') + Array.from({ length: COUNT }, (_, i) => head(`/q${i}`)).join(''))
  const socket = connect(pc.proxyPort, '127.0.0.1')
  socket.on('error', () => undefined)
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.pause()
  // In pieces, each counted once the kernel has taken it (a single write counts only when all is taken).
  let taken = 0
  for (let at = 0; at < flood.length; at += 65536) {
    const piece = flood.subarray(at, at + 65536)
    socket.write(piece, () => (taken += piece.length))
  }
  // Unbounded, the proxy had taken all of it by now; bounded, what it has not read waits in kernel
  // buffers (a few MB at most on loopback) and in this socket.
  await new Promise((r) => setTimeout(r, 2500))
  t.ok(taken < flood.length / 2, `the proxy stopped reading: ${taken} of ${flood.length} bytes taken`)
  const other = await proxiedGet(pc.proxyPort, `http://origin.test:${origin.port}/other`)
  t.equal(other.status, 200, 'another client is served meanwhile')

  release()
  let answers = 0
  let text = ''
  socket.on('data', (b: Buffer) => {
    text += b.toString('latin1')
    const lines = text.split('\n')
    text = lines.pop() ?? ''
    // Each answer's status line (past the agent's default rate limit they are 429s, also answers).
    for (const line of lines) if (/^HTTP\/1\.1 \d{3} /.test(line)) answers++
  })
  socket.resume()
  const deadline = Date.now() + 20_000
  while (answers < COUNT + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.equal(answers, COUNT + 1, `and every request is answered once the client reads (${answers})`)
})
