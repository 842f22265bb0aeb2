import { once } from 'node:events'
import { join } from 'node:path'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth, rawExchange } from '../helpers/clients.js'
import { openTunnel } from '../helpers/tunnel.js'
import { adminCall } from '../helpers/admin.js'
import { originOnlyYaml, TOKEN, TOKEN_HASH, upstreamYaml, writeConfig } from '../helpers/config.js'
import { listeningAt, spawnPortcullis } from '../helpers/spawn-portcullis.js'

/**
 * Connections are bounded before and after authentication: a client without credentials cannot
 * hold the process's descriptors or fill the record, an agent's idle kept-alive connections count
 * against its concurrent_connections, and running out of descriptors is survived and said once.
 */

/** A socket from `localAddress` (any 127.x address is this machine) to the proxy, connected. */
async function dial(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', localAddress })
  s.on('error', () => undefined)
  await once(s, 'connect')
  return s
}

/** Send one request on `s` and read one response head+body (content-length framed); null if the proxy closed first. */
async function exchange(s: Socket, request: string): Promise<string | null> {
  let buf = ''
  const onData = (c: Buffer): void => void (buf += c.toString('latin1'))
  s.on('data', onData)
  s.write(request)
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    const end = buf.indexOf('\r\n\r\n')
    if (end >= 0) {
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0)
      if (buf.length >= end + 4 + len) break
    }
    if (s.destroyed || s.readableEnded) break
    await Promise.race([once(s, 'data'), once(s, 'close'), new Promise((r) => setTimeout(r, 50))])
  }
  s.off('data', onData)
  return buf === '' ? null : buf
}

const closedWithin = async (s: Socket, ms: number): Promise<boolean> =>
  s.destroyed ||
  (await Promise.race([once(s, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]))

t.test('connections before and after authentication are bounded', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      agents: { ci: 'limits: { concurrent_connections: 2 }', solo: 'limits: { concurrent_connections: 1 }' },
      extra: `listen: { host: 127.0.0.1, port: 0, max_unauthenticated_per_source: 4, unauthenticated_denials_per_minute: 6 }`,
    }),
  )
  const get = (user: string | null): string =>
    `GET http://origin.test:${origin.port}/x HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n${
      user === null ? '' : `Proxy-Authorization: ${basicAuth(user, TOKEN)}\r\n`
    }\r\n`

  t.test('a 407 on a connection that never authenticated closes it', async (t) => {
    const s = await dial(pc.proxyPort, '127.0.0.5')
    const answer = await exchange(s, get(null))
    t.match(answer, /^HTTP\/1\.1 407 /)
    t.match(answer, /connection: close/i)
    t.ok(await closedWithin(s, 2000), 'closed after the answer')
  })

  t.test("idle kept-alive connections count against the agent's concurrent_connections", async (t) => {
    const a = await dial(pc.proxyPort)
    const b = await dial(pc.proxyPort)
    t.match(await exchange(a, get('ci')), /^HTTP\/1\.1 200 /)
    t.match(await exchange(b, get('ci')), /^HTTP\/1\.1 200 /)
    // Both are idle now, kept alive; a third connection finds the agent's two slots taken.
    const c = await dial(pc.proxyPort)
    const third = await exchange(c, get('ci'))
    t.match(third, /^HTTP\/1\.1 429 /)
    t.match(third, /x-portcullis-decision: denied_rate_limited/i)
    t.ok(await closedWithin(c, 2000), 'the refused connection is closed')
    t.match(await exchange(a, get('ci')), /^HTTP\/1\.1 200 /, 'a connection holding a slot goes on')
    a.destroy()
    await once(a, 'close')
    const d = await dial(pc.proxyPort)
    t.match(await exchange(d, get('ci')), /^HTTP\/1\.1 200 /, 'a slot given back at close is free again')
    b.destroy()
    d.destroy()
  })

  t.test('a source holds only its share of unauthenticated connections; other sources are served', async (t) => {
    const idle = await Promise.all(Array.from({ length: 8 }, () => dial(pc.proxyPort, '127.0.0.3')))
    const closed = await Promise.all(idle.map((s) => closedWithin(s, 500)))
    t.equal(closed.filter(Boolean).length, 4, 'past 4 unauthenticated connections, a source is closed at once')
    const other = await dial(pc.proxyPort, '127.0.0.4')
    t.match(await exchange(other, get('ci')), /^HTTP\/1\.1 200 /, 'an agent on another source is served meanwhile')
    other.destroy()
    for (const s of idle) s.destroy()
  })

  t.test(
    'unauthenticated denials spend a per-source budget; past it the connection is closed unanswered',
    async (t) => {
      const answers: Array<string | null> = []
      for (let i = 0; i < 9; i++) answers.push(await exchange(await dial(pc.proxyPort, '127.0.0.6'), get(null)))
      t.equal(answers.filter((a) => a?.startsWith('HTTP/1.1 407')).length, 6, 'six 407s (the budget)')
      t.equal(answers.filter((a) => a === null).length, 3, 'then closed without an answer')
      const metrics = await (
        await fetch(`${pc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${pc.adminToken}` } })
      ).text()
      t.match(metrics, /portcullis_connections_refused_total\{cause="unauthenticated_budget"\} 3/)
      t.match(metrics, /portcullis_connections_refused_total\{cause="unauthenticated_per_source"\} 4/)
    },
  )

  t.test('an intercepted connection dropped right after the handshake gives its slot back at once', async (t) => {
    const httpsPc = await startPortcullis(
      t,
      `${upstreamYaml([443])}
groups:
  g:
    allow:
      - host: origin.test
        paths: ["/**"]
agents:
  - { id: solo, token: ${TOKEN_HASH}, groups: [g], limits: { concurrent_connections: 1 } }
`,
    )
    const ca = readFileSync(join(httpsPc.dir, 'ca.pem'))
    // The slot is back as soon as the proxy has read the client's close: within a few retries, far
    // sooner than the 1.5 s head deadline that used to release it.
    for (let i = 0; i < 3; i++) {
      const started = Date.now()
      let tunnel = await openTunnel(httpsPc.proxyPort, 'origin.test:443', 'solo')
      while (!tunnel.head.startsWith('HTTP/1.1 200') && Date.now() - started < 3000) {
        tunnel.socket.destroy()
        await new Promise((r) => setTimeout(r, 20))
        tunnel = await openTunnel(httpsPc.proxyPort, 'origin.test:443', 'solo')
      }
      t.match(tunnel.head, /^HTTP\/1\.1 200 /, `CONNECT ${i + 1} admitted`)
      t.ok(Date.now() - started < 500, `within ${Date.now() - started} ms of the last one leaving`)
      const tls = tlsConnect({ socket: tunnel.socket, servername: 'origin.test', ca })
      await once(tls, 'secureConnect')
      tls.destroy()
      tunnel.socket.destroy()
    }
  })
})

t.test('a reload that changes unauthenticated_denials_per_minute applies to sources already counted', async (t) => {
  const origin = await startHttpOrigin(t)
  const yaml = (perMinute: number): string =>
    originOnlyYaml([origin.port], {
      extra: `listen: { host: 127.0.0.1, port: 0, unauthenticated_denials_per_minute: ${perMinute} }`,
    })
  const pc = await startPortcullis(t, yaml(2))
  const unauthenticated = `GET http://origin.test:${origin.port}/x HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`
  const answers = async (n: number): Promise<Array<string | null>> => {
    const got: Array<string | null> = []
    for (let i = 0; i < n; i++) got.push(await exchange(await dial(pc.proxyPort, '127.0.0.8'), unauthenticated))
    return got
  }
  const before = await answers(3)
  t.equal(before.filter((a) => a?.startsWith('HTTP/1.1 407')).length, 2, 'two 407s, the budget at start')
  t.equal(before[2], null, 'then closed unanswered')
  pc.rewriteConfig(yaml(600))
  t.match(await adminCall(pc.adminUrl, 'POST', '/api/reload'), { status: 200, body: { ok: true } })
  const after = await answers(3)
  t.ok(
    after.every((a) => a?.startsWith('HTTP/1.1 407')),
    'the raised budget answers the same source at once',
  )
  t.notOk(
    pc.logLines().some((l) => l.includes('PC_CONFIG_RESTART_NEEDED')),
    'and no restart is asked for',
  )
})

t.test('connections past what the descriptors allow: refused, said once, served again once they close', async (t) => {
  const origin = await startHttpOrigin(t)
  const token = 'fd-test-admin-token-0123456789'
  const file = writeConfig(t.testdir(), originOnlyYaml([origin.port]))
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace(
      'listen: { host: 127.0.0.1, port: 0 }',
      'listen: { host: 127.0.0.1, port: 0, max_unauthenticated_per_source: 1000 }',
    ),
  )
  // 128 descriptors: listen.max_connections (auto) is (128 - 64) / 2 = 32.
  const proc = spawnPortcullis(t, file, { PORTCULLIS_ADMIN_TOKEN: token }, ['prlimit', '--nofile=128:128'])
  const started = await proc.waitLine((r) => r.code === 'PC_STARTED')
  t.match(started, { max_connections: 32 }, 'max_connections follows the descriptor limit')
  t.match(await proc.waitLine((r) => r.code === 'PC_FD_LIMIT'), { soft: 128, hard: 128 }, 'the limit is logged')
  const port = listeningAt(started).proxyPort
  const held: Socket[] = []
  for (let i = 0; i < 90; i++) {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => undefined)
    held.push(s)
    await Promise.race([once(s, 'connect'), once(s, 'close')])
  }
  await proc.waitLine((r) => r.code === 'PC_MAX_CONNECTIONS', 10_000)
  const closed = await Promise.all(held.map((s) => closedWithin(s, 300)))
  t.equal(closed.filter(Boolean).length, 90 - 32, 'connections past max_connections are closed at once')
  t.equal(proc.parsed().filter((r) => r.code === 'PC_MAX_CONNECTIONS').length, 1, 'one line for the episode')
  for (const s of held) s.destroy()
  await Promise.all(held.map((s) => (s.closed ? null : once(s, 'close'))))
  const request = `GET http://origin.test:${origin.port}/x HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: ${basicAuth('ci', TOKEN)}\r\nConnection: close\r\n\r\n`
  // The proxy reads each close a moment after the client's side is closed: retry, bounded.
  let r = await rawExchange(port, request, 5000)
  for (let i = 0; i < 50 && !r.response.startsWith('HTTP/1.1 200'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    r = await rawExchange(port, request, 5000)
  }
  t.match(r.response, /^HTTP\/1\.1 200 /, 'served again once connections close')
  const metrics = await (
    await fetch(`http://${String(started.admin)}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  ).text()
  // 58 held ones, and any retry above that came before the proxy had seen the others close.
  const refused = Number(/portcullis_connections_refused_total\{cause="max_connections"\} (\d+)/.exec(metrics)?.[1])
  t.ok(refused >= 58, `the refusals are counted (${refused})`)
})
