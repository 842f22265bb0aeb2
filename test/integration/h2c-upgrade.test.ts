import t from 'tap'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl, rawExchange, basicAuth } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'

/**
 * `Upgrade: h2c` on a plain request (curl --http2 on an http:// URL): the proxy declines the upgrade,
 * as Squid does, and answers over HTTP/1.1; the origin sees neither Upgrade nor HTTP2-Settings.
 */
t.test('an h2c upgrade is declined and the request answered over HTTP/1.1', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port]))
  const user = `ci:${TOKEN}`

  for (const [name, extra] of [
    ['absolute-form on the proxy listener', []],
    ['inside a cleartext tunnel', ['--proxytunnel']],
  ] as const)
    t.test(name, async (t) => {
      const path = `/h2c-${extra.length}`
      const r = await curl([
        '--http2',
        ...extra,
        '-x',
        pc.proxyUrl,
        '--proxy-user',
        user,
        `http://origin.test:${origin.port}${path}`,
      ])
      t.equal(r.status, 200, r.stderr)
      t.equal(r.body, `origin saw GET ${path}\n`)
      const seen = origin.seen.find((s) => s.url === path)
      t.ok(seen, 'the origin was reached')
      t.notOk(seen?.headers.upgrade, 'no Upgrade upstream')
      t.notOk(seen?.headers['http2-settings'], 'no HTTP2-Settings upstream')
      t.notMatch(String(seen?.headers.connection ?? ''), /upgrade|http2-settings/i, 'nor named in Connection')
      t.ok(
        pc.decisions().some((d) => d.path === path && d.decision === 'allow'),
        'decided and recorded as usual',
      )
    })

  t.test('a denied h2c request gets the usual denial', async (t) => {
    const r = await curl(['--http2', '-x', pc.proxyUrl, '--proxy-user', user, `http://other.test:${origin.port}/h2c`])
    t.equal(r.status, 403, r.stderr)
    t.equal(r.headers['x-portcullis-decision'], 'denied_no_rule')
  })

  t.test('an h2c upgrade with a body is still refused: the body is past where the parser stopped', async (t) => {
    const before = origin.seen.length
    const auth = `Proxy-Authorization: ${basicAuth('ci', TOKEN)}\r\n`
    const { response, closed } = await rawExchange(
      pc.proxyPort,
      `POST http://origin.test:${origin.port}/h2c-body HTTP/1.1\r\nHost: origin.test\r\n${auth}` +
        `Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\nabc`,
    )
    t.match(response, /^HTTP\/1\.1 400 [^]*upgrade_not_supported/)
    t.ok(closed)
    t.equal(origin.seen.length, before, 'nothing reached the origin')
  })
})
