import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { createAdminServer, sendJson, type AdminServerLimits, type Route } from '../../../src/admin/server.js'

const TOKEN = 'router-test-token'

/** The router on a loopback port with routes that answer with their own name. */
async function serve(
  t: Test,
  extra: Route[] = [],
  limits?: AdminServerLimits,
): Promise<{ base: string; errors: unknown[] }> {
  const named = (method: string, path: string, open = false): Route => ({
    method,
    path,
    open,
    handler: (_req, res, url) => sendJson(res, 200, { route: `${method} ${path}`, path: url.pathname }),
  })
  const routes = [
    named('GET', '/'),
    named('GET', '/healthz', true),
    named('GET', '/api/events'),
    named('POST', '/api/approvals'),
    named('GET', '/api/approvals'),
    named('DELETE', '/api/approvals/'),
    ...extra,
  ]
  const errors: unknown[] = []
  const server = createAdminServer(routes, TOKEN, (err) => errors.push(err), limits)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, errors }
}

const auth = (token = TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` })

t.test('routing', async (t) => {
  const { base } = await serve(t)
  const CASES: ReadonlyArray<readonly [string, string, number, string | null, string]> = [
    ['GET', '/api/events', 200, 'GET /api/events', 'an exact path'],
    ['GET', '/api/events?decision=deny', 200, 'GET /api/events', 'the query string is not part of the path'],
    ['GET', '/api/events/', 404, null, 'an exact path is not a prefix'],
    ['DELETE', '/api/approvals/ap-1', 200, 'DELETE /api/approvals/', 'a path ending in / is a prefix'],
    ['DELETE', '/api/approvals/', 200, 'DELETE /api/approvals/', 'a prefix route also matches its bare path'],
    ['DELETE', '/api/approvals', 405, null, 'but not the path without its slash'],
    ['GET', '/', 200, 'GET /', 'the root is exact'],
    ['GET', '/nothing', 404, null, 'the root is never a prefix'],
    ['POST', '/api/approvals', 200, 'POST /api/approvals', 'the method picks among routes of one path'],
    ['PUT', '/api/events', 405, null, 'a known path with another method'],
    ['HEAD', '/api/events', 200, null, 'HEAD is GET without a body'],
  ]
  for (const [method, path, status, route, behaviour] of CASES) {
    await t.test(`${behaviour}: ${method} ${path}`, async (t) => {
      const res = await fetch(`${base}${path}`, { method, headers: auth() })
      t.equal(res.status, status)
      const text = await res.text()
      if (route !== null) t.match(JSON.parse(text), { route })
      if (status === 404) t.match(JSON.parse(text), { error: 'not_found' })
      if (status === 405) t.match(JSON.parse(text), { error: 'method_not_allowed' })
      if (method === 'HEAD') t.equal(text, '')
    })
  }
})

t.test('the bearer token', async (t) => {
  const { base } = await serve(t)
  const CASES: ReadonlyArray<readonly [Record<string, string>, number, string]> = [
    [{}, 401, 'none'],
    [auth('wrong'), 401, 'a wrong token'],
    [auth(`${TOKEN}x`), 401, 'a longer token'],
    [{ authorization: TOKEN }, 401, 'the token without the Bearer scheme'],
    [{ authorization: `Basic ${TOKEN}` }, 401, 'another scheme'],
    [{ authorization: `bearer ${TOKEN}` }, 200, 'the scheme is case-insensitive'],
    [{ authorization: `Bearer   ${TOKEN}  ` }, 200, 'spaces around the token'],
    [auth(), 200, 'the token'],
  ]
  for (const [headers, status, behaviour] of CASES) {
    const res = await fetch(`${base}/api/events`, { headers })
    t.equal(res.status, status, behaviour)
    if (status === 401) {
      t.equal(res.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin"', `${behaviour}: the challenge`)
      t.match(await res.json(), { error: 'unauthorized' })
    } else await res.arrayBuffer()
  }
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'an open route needs none')
  t.equal((await fetch(`${base}/nothing`)).status, 404, 'an unknown path is 404 before any token check')
})

t.test('a failing handler is a 500 and reported, never a crash', async (t) => {
  const { base, errors } = await serve(t, [
    {
      method: 'GET',
      path: '/throws',
      handler: () => {
        throw new Error('boom')
      },
    },
    { method: 'GET', path: '/rejects', handler: async () => Promise.reject(new Error('late boom')) },
    {
      method: 'GET',
      path: '/half',
      handler: async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('partial')
        throw new Error('after the headers')
      },
    },
  ])
  for (const path of ['/throws', '/rejects']) {
    const res = await fetch(`${base}${path}`, { headers: auth() })
    t.equal(res.status, 500, path)
    t.strictSame(await res.json(), { error: 'internal_error' }, `${path}: no error text leaks`)
  }
  await t.rejects(
    fetch(`${base}/half`, { headers: auth() }).then((r) => r.text()),
    'a response already started is cut off',
  )
  t.match(
    errors.map((e) => (e as Error).message),
    ['boom', 'late boom', 'after the headers'],
  )
})

t.test('a trickled head is cut at its timeout, and connections past the cap are refused', async (t) => {
  const { base } = await serve(t, [], { headTimeoutMs: 1000, maxConnections: 3 })
  const port = Number(new URL(base).port)
  const open = async (): Promise<Socket> => {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => undefined)
    t.teardown(() => s.destroy())
    await once(s, 'connect')
    return s
  }
  const closedWithin = (s: Socket, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      s.once('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  const slow = await open()
  slow.write('GET /healthz HTTP/1.1\r\nHost: a\r\n')
  const trickle = setInterval(() => slow.write('X'), 200)
  t.teardown(() => clearInterval(trickle))
  const started = Date.now()
  t.ok(await closedWithin(slow, 4000), `the trickled head is cut (after ${Date.now() - started} ms; it lasted 31 s)`)
  const idle = [await open(), await open(), await open()]
  const extra = await open()
  t.ok(await closedWithin(extra, 1000), 'a fourth connection is closed at once')
  t.notOk(
    idle.some((s) => s.destroyed),
    'the three under the cap stay',
  )
})
