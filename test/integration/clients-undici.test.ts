import t from 'tap'
import { ProxyAgent, request } from 'undici'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin, startHttpsOrigin } from '../helpers/origins.js'
import { basicAuth } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'

t.test('undici ProxyAgent through the real proxy', async (t) => {
  const origin = await startHttpOrigin(t)
  const tls = await startHttpsOrigin(t, ['origin.test'])
  const pc = await startPortcullis(t, originOnlyYaml([origin.port, tls.port], { caFile: tls.ca.certFile }))
  const token = basicAuth('ci', TOKEN)
  // undici 7 tunnels every request by default, plain http too; proxyTunnel: false sends absolute-form for http.
  const plain = new ProxyAgent({ uri: pc.proxyUrl, token, proxyTunnel: false })
  const tunnelling = new ProxyAgent({ uri: pc.proxyUrl, token, requestTls: { ca: tls.ca.certPem } })
  t.teardown(async () => {
    await plain.close()
    await tunnelling.close()
  })

  t.test('plain HTTP: 200 with the origin body, no proxy credentials upstream', async (t) => {
    const r = await request(`http://origin.test:${origin.port}/undici-plain`, { dispatcher: plain })
    t.equal(r.statusCode, 200)
    t.equal(await r.body.text(), 'origin saw GET /undici-plain\n')
    const seen = origin.seen.find((s) => s.url === '/undici-plain')
    t.ok(seen, 'origin reached')
    t.notOk(seen?.headers['proxy-authorization'], 'no Proxy-Authorization upstream')
    t.match(seen?.headers.via ?? '', /portcullis/)
    const rec = await pc.waitForRecord((x) => x.event === 'decision' && x.path === '/undici-plain')
    t.match(rec, {
      agent: 'ci',
      scheme: 'http',
      method: 'GET',
      decision: 'allow',
      reason: 'allowed',
      rule: 'g.allow[0]',
      would_deny: false,
      tls: null,
    })
  })

  t.test('HTTPS through a spliced tunnel: 200 with the origin body', async (t) => {
    const r = await request(`https://origin.test:${tls.port}/undici-tls`, { dispatcher: tunnelling })
    t.equal(r.statusCode, 200)
    t.equal(await r.body.text(), 'origin saw GET /undici-tls\n')
    const seen = tls.seen.find((s) => s.url === '/undici-tls')
    t.ok(seen, 'origin reached')
    t.notOk(seen?.headers['proxy-authorization'], 'no Proxy-Authorization inside the tunnel')
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === tls.port && x.decision === 'allow',
    )
    t.match(rec, {
      agent: 'ci',
      scheme: 'https',
      host: 'origin.test',
      tls: 'tunnel',
      reason: 'allowed',
      rule: 'g.allow[0]',
      path: null,
    })
  })

  t.test('a denied host over plain HTTP: 403 with the decision headers and body', async (t) => {
    const before = origin.seen.length
    const r = await request(`http://other.test:${origin.port}/undici-denied`, { dispatcher: plain })
    t.equal(r.statusCode, 403)
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
    const id = String(r.headers['x-portcullis-request-id'])
    t.match(await r.body.text(), `portcullis approve ${id}`)
    t.equal(origin.seen.length, before, 'origin not reached')
    const rec = await pc.waitForRecord((x) => x.id === id)
    t.match(rec, { decision: 'deny', reason: 'denied_no_rule', rule: null, host: 'other.test', would_deny: false })
  })

  t.test('a denied host over HTTPS: undici rejects with the CONNECT status', async (t) => {
    const before = tls.seen.length
    // undici 7 surfaces only the status, as a RequestAbortedError (name AbortError, code UND_ERR_ABORTED):
    // the X-Portcullis-Decision header and the body an agent could relay are not reachable from the caller.
    await t.rejects(request(`https://other.test:${tls.port}/undici-denied-tls`, { dispatcher: tunnelling }), {
      name: 'AbortError',
      code: 'UND_ERR_ABORTED',
      message: 'Proxy response (403) !== 200 when HTTP Tunneling',
    })
    t.equal(tls.seen.length, before, 'origin not reached')
    const rec = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.host === 'other.test',
    )
    t.match(rec, {
      agent: 'ci',
      decision: 'deny',
      reason: 'denied_no_rule',
      rule: null,
      port: tls.port,
      would_deny: false,
    })
  })

  t.test('a wrong token: undici rejects with the CONNECT 407', async (t) => {
    const wrong = new ProxyAgent({
      uri: pc.proxyUrl,
      token: basicAuth('ci', 'wrong'),
      requestTls: { ca: tls.ca.certPem },
    })
    t.teardown(() => wrong.close())
    await t.rejects(request(`https://origin.test:${tls.port}/undici-407`, { dispatcher: wrong }), {
      code: 'UND_ERR_ABORTED',
      message: 'Proxy response (407) !== 200 when HTTP Tunneling',
    })
  })

  t.test('plain HTTP with undici 7 defaults is tunnelled by CONNECT and still decided per request', async (t) => {
    // ProxyAgent's default proxyTunnel: true sends CONNECT even for http:// URLs; Portcullis reads the
    // cleartext requests inside the tunnel and decides each on its full URL, as if sent absolute-form.
    const defaults = new ProxyAgent({ uri: pc.proxyUrl, token })
    t.teardown(() => defaults.close())
    const res = await request(`http://origin.test:${origin.port}/undici-default-tunnel?x=1`, { dispatcher: defaults })
    t.equal(res.statusCode, 200)
    t.match(await res.body.text(), /origin saw GET \/undici-default-tunnel\?x=1/)
    t.notOk(origin.seen.at(-1)?.headers['proxy-authorization'], 'no credentials upstream')
    const connect = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'CONNECT' && x.port === origin.port,
    )
    t.match(connect, { agent: 'ci', decision: 'allow', tls: null })
    const inner = await pc.waitForRecord(
      (x) => x.event === 'decision' && x.method === 'GET' && x.path === '/undici-default-tunnel',
    )
    t.match(inner, {
      agent: 'ci',
      scheme: 'http',
      tls: null,
      decision: 'allow',
      port: origin.port,
      address: '127.0.0.1',
    })
    const again = await request(`http://origin.test:${origin.port}/second`, { dispatcher: defaults })
    t.equal(again.statusCode, 200, 'keep-alive inside the tunnel')
    await again.body.text()
  })
})

t.test('path rules hold for http:// URLs that undici tunnels by CONNECT', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const agent = new ProxyAgent({ uri: pc.proxyUrl, token: basicAuth('ci', TOKEN) })
  t.teardown(() => agent.close())
  const ok = await request(`http://origin.test:${origin.port}/public/a`, { dispatcher: agent })
  t.equal(ok.statusCode, 200)
  await ok.body.text()
  const before = origin.seen.length
  const denied = await request(`http://origin.test:${origin.port}/private/a`, {
    dispatcher: agent,
    headers: { accept: 'application/json' },
  })
  t.equal(denied.statusCode, 403)
  t.equal(denied.headers['x-portcullis-decision'], 'denied_path')
  t.match(await denied.body.json(), { reason: 'denied_path', path: '/private/a', rule: 'g.allow[0]' })
  t.equal(origin.seen.length, before, 'the denied request never reached the origin')
})
