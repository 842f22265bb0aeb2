import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import { ulid } from 'ulid'
import { encodeSandboxToken, idTimeMs, signingKey } from '../../src/identity/sandbox-token.js'
import type { ApprovalRecord, DecisionRecord, TelemetryRecord } from '../../src/telemetry/events.js'
import { adminCall } from '../helpers/admin.js'
import { until } from '../helpers/poll.js'
import { basicAuth, curl, proxiedGet } from '../helpers/clients.js'
import { TOKEN, TOKEN_HASH, upstreamYaml } from '../helpers/config.js'
import { startHttpOrigin, startHttpsOrigin, type OriginHandler } from '../helpers/origins.js'
import { ADMIN_TOKEN, startPortcullis, type Portcullis } from '../helpers/start-portcullis.js'
import { openTunnel } from '../helpers/tunnel.js'

/**
 * Sandbox credentials (SPEC §9) through the real proxy: issued by the admin API, accepted with no
 * storage, carried into every record, refused when tampered, expired, for another agent or longer
 * than max_sandbox_ttl, limited per sandbox, revoked, and approved for one sandbox only.
 */

const KEY = randomBytes(32)
const ENV = { PORTCULLIS_SIGNING_KEY: KEY.toString('base64') }

interface Issued {
  readonly id: string
  readonly agent: string
  readonly user: string
  readonly token: string
  readonly labels: Record<string, string>
  readonly expires_at: string
  readonly proxy_url: string
  readonly proxy_env: Record<string, string>
}

/** For proxiedGet: the proxy's denials as JSON. */
const JSON_ACCEPT = { accept: 'application/json' }

async function issue(pc: Portcullis, agent: string, ttl: string, labels: Record<string, string> = {}): Promise<Issued> {
  const r = await adminCall<Issued>(pc.adminUrl, 'POST', '/api/sandboxes', { agent, ttl, labels })
  if (r.status !== 201) throw new Error(`issue: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** A credential signed here with the proxy's key: what an offline issuer with odd claims would make. */
function signed(agent: string, iatMs: number, ttlS: number, labels: Record<string, string> = {}): Issued {
  const iat = Math.floor(iatMs / 1000)
  const id = ulid(iat * 1000)
  const token = encodeSandboxToken({ agent, id, iat, exp: iat + ttlS, labels }, signingKey(KEY))
  return {
    id,
    agent,
    user: `${agent}+${id}`,
    token,
    labels,
    expires_at: new Date((iat + ttlS) * 1000).toISOString(),
    proxy_url: '',
    proxy_env: {},
  }
}

const isDecision = (r: TelemetryRecord): r is DecisionRecord => r.event === 'decision'

/** `/stream`: an answer that goes on (a byte every 100 ms, 10 s at most) until the client leaves; else the usual one. */
const streaming: OriginHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  if (req.url !== '/stream') return void res.end(`origin saw ${req.method} ${req.url}\n`)
  let sent = 0
  const timer = setInterval(() => (++sent > 100 ? res.end() : res.write('.')), 100)
  res.once('close', () => clearInterval(timer))
}

t.test('sandbox credentials', async (t) => {
  const origin = await startHttpOrigin(t, streaming)
  const tlsOrigin = await startHttpsOrigin(t, ['origin.test'])
  const configWith = (
    maxTtl: string,
  ): string => `${upstreamYaml([origin.port, tlsOrigin.port], `  ca_file: ${JSON.stringify(tlsOrigin.ca.certFile)}`)}
identity: { max_sandbox_ttl: ${maxTtl} }
groups:
  g:
    allow:
      - host: origin.test
      - host: paths.test
        paths: ["/p/**"]
agents:
  - { id: ci, groups: [g], sandboxes: true, limits: { requests_per_minute: 1000 } }
  - { id: lim, groups: [g], sandboxes: true, limits: { requests_per_minute: 3 } }
  - { id: other, groups: [g], sandboxes: true }
  - { id: pinned, groups: [g], sandboxes: true, source_cidrs: [127.0.0.9/32] }
  - { id: plain, token: ${TOKEN_HASH}, groups: [g] }
`
  const pc = await startPortcullis(t, configWith('24h'), {}, { env: ENV })
  const at = (path: string, host = 'origin.test'): string => `http://${host}:${origin.port}${path}`

  t.test('issued by the admin API: the SPEC fields, proxy lines, and a credential that works', async (t) => {
    const s = await issue(pc, 'ci', '2h', { task: 'T-123', team: 'infra' })
    t.match(s, {
      id: /^[0-9A-HJKMNP-TV-Z]{26}$/,
      agent: 'ci',
      user: `ci+${s.id}`,
      token: /^pcs1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/,
      labels: { task: 'T-123', team: 'infra' },
      proxy_url: `http://ci+${s.id}:${s.token}@127.0.0.1:${pc.proxyPort}`,
    })
    const life = Date.parse(s.expires_at) - Date.now()
    t.ok(life > 7190_000 && life <= 7201_000, `expires in 2 h (${life} ms)`)
    t.same(s.proxy_env, {
      HTTP_PROXY: s.proxy_url,
      HTTPS_PROXY: s.proxy_url,
      http_proxy: s.proxy_url,
      https_proxy: s.proxy_url,
    })

    const seenBefore = origin.seen.length
    const r = await proxiedGet(pc.proxyPort, at('/issued'), s.user, s.token)
    t.equal(r.status, 200, r.body)
    t.equal(origin.seen.length, seenBefore + 1, 'the origin was reached')
    t.equal(origin.seen.at(-1)?.headers['proxy-authorization'], undefined, 'credentials never reach the origin')
    const rec = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === '/issued')
    t.match(rec, { agent: 'ci', sandbox: s.id, labels: { task: 'T-123', team: 'infra' }, decision: 'allow' })
    const close = await pc.waitForRecord((x) => x.event === 'close' && x.id === rec.id)
    t.match(close, { agent: 'ci', sandbox: s.id, labels: { task: 'T-123' } })

    t.test('curl with the proxy_url line, through a spliced CONNECT tunnel', async (t) => {
      const c = await curl([
        '--proxy',
        s.proxy_url,
        '--cacert',
        tlsOrigin.ca.certFile,
        `https://origin.test:${tlsOrigin.port}/tunnelled`,
      ])
      t.equal(c.exitCode, 0, c.stderr)
      t.equal(c.status, 200)
      const connect = await pc.waitForRecord<DecisionRecord>(
        (x) => isDecision(x) && x.method === 'CONNECT' && x.sandbox === s.id && x.port === tlsOrigin.port,
      )
      t.match(connect, { agent: 'ci', tls: 'tunnel', labels: { task: 'T-123' }, decision: 'allow' })
      const closed = await pc.waitForRecord((x) => x.event === 'close' && x.id === connect.id)
      t.match(closed, { sandbox: s.id, agent: 'ci' })
    })

    t.test('the agent stays the Prometheus label: no sandbox id in /metrics', async (t) => {
      const text = await (
        await fetch(`${pc.adminUrl}/metrics`, { headers: { authorization: `Bearer ${pc.adminToken}` } })
      ).text()
      t.match(text, /agent="ci"/)
      t.notMatch(text, new RegExp(s.id))
    })

    t.test('/api/events filters by sandbox and label', async (t) => {
      const other = await issue(pc, 'ci', '1h', { task: 'T-999' })
      t.equal((await proxiedGet(pc.proxyPort, at('/other-task'), other.user, other.token)).status, 200)
      const bySandbox = await adminCall<{ events: TelemetryRecord[] }>(
        pc.adminUrl,
        'GET',
        `/api/events?sandbox=${s.id}&limit=1000`,
      )
      t.equal(bySandbox.status, 200)
      t.ok(bySandbox.body.events.length >= 2)
      t.ok(bySandbox.body.events.every((e) => e.event !== 'approval' && e.sandbox === s.id))
      const byLabel = await adminCall<{ events: TelemetryRecord[] }>(
        pc.adminUrl,
        'GET',
        '/api/events?label=task%3DT-999&decision=allow',
      )
      t.ok(byLabel.body.events.length >= 1)
      t.ok(byLabel.body.events.every((e) => e.event === 'decision' && e.sandbox === other.id))
      const both = await adminCall<{ events: TelemetryRecord[] }>(
        pc.adminUrl,
        'GET',
        `/api/events?label=task%3DT-123&label=team%3Dinfra&sandbox=${other.id}`,
      )
      t.same(both.body.events, [], 'every label must hold, and the sandbox')
      const badLabel = await adminCall(pc.adminUrl, 'GET', '/api/events?label=novalue')
      t.equal(badLabel.status, 400)
    })
  })

  t.test('refusals: 407 denied_auth_invalid with a detail, recorded', async (t) => {
    const good = await issue(pc, 'ci', '1h', { task: 'T-1' })
    const cases: Array<[string, string, string, string]> = [
      // [name, user, token, detail]
      [
        'a tampered payload (longer life)',
        good.user,
        (() => {
          const [p, payload, mac] = good.token.split('.') as [string, string, string]
          const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp: number }
          claims.exp += 86400
          return `${p}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`
        })(),
        'bad_signature',
      ],
      ['a token that is not one', good.user, 'hunter2', 'malformed_token'],
      (() => {
        const s = signed('ci', Date.now() - 3 * 3600_000, 3600)
        return ['an expired credential', s.user, s.token, 'expired'] as [string, string, string, string]
      })(),
      ['another template agent named in the user', `other+${good.id}`, good.token, 'wrong_agent'],
      ['another sandbox id in the user', `ci+${ulid()}`, good.token, 'wrong_agent'],
      (() => {
        const s = signed('ci', Date.now(), 48 * 3600)
        return ['longer than max_sandbox_ttl', s.user, s.token, 'ttl_exceeds_max'] as [string, string, string, string]
      })(),
      ['an agent that is not a template', `plain+${good.id}`, good.token, 'not_a_sandbox_template'],
      (() => {
        const wrongKey = encodeSandboxToken(
          { agent: 'ci', id: good.id, iat: Math.floor(Date.parse(good.expires_at) / 1000) - 3600, exp: 0, labels: {} },
          signingKey(randomBytes(32)),
        )
        return ['signed with another key', good.user, wrongKey, 'bad_signature'] as [string, string, string, string]
      })(),
    ]
    for (const [name, user, token, detail] of cases)
      t.test(name, async (t) => {
        const seen = origin.seen.length
        const path = `/refused-${detail}-${Math.random().toString(36).slice(2)}`
        const r = await proxiedGet(pc.proxyPort, at(path), user, token, JSON_ACCEPT)
        t.equal(r.status, 407)
        t.equal(r.headers['x-portcullis-decision'], 'denied_auth_invalid')
        t.match(r.headers['proxy-authenticate'], /Basic realm="portcullis"/)
        t.match(JSON.parse(r.body), { reason: 'denied_auth_invalid', detail })
        t.equal(origin.seen.length, seen, 'nothing reached the origin')
        const rec = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === path)
        t.match(rec, { decision: 'deny', reason: 'denied_auth_invalid', detail })
      })

    t.test('without a genuine credential, a template, a plain agent and an unknown id answer alike', async (t) => {
      const sameBut = (body: string): string => body.replace(/[0-9A-HJKMNP-TV-Z]{26}/g, 'ID')
      for (const token of ['hunter2', `${good.token.slice(0, -2)}AA`]) {
        const bodies = await Promise.all(
          ['ci', 'plain', 'nobody'].map(async (agent) => {
            const r = await proxiedGet(pc.proxyPort, at('/enumerate'), `${agent}+${good.id}`, token, JSON_ACCEPT)
            t.equal(r.status, 407)
            return sameBut(r.body)
          }),
        )
        t.notMatch(bodies[0], /"agent":"ci"|for agent/, 'the body names no agent')
        t.equal(bodies[1], bodies[0], 'a plain agent answers as the template')
        t.equal(bodies[2], bodies[0], 'an unknown id answers as the template')
      }
    })

    t.test('an expired credential on CONNECT: 407 with the detail, and the record names the sandbox', async (t) => {
      const s = signed('ci', Date.now() - 2 * 3600_000, 60, { task: 'old' })
      const { socket, head } = await openTunnel(pc.proxyPort, `origin.test:${tlsOrigin.port}`, s.user, s.token)
      socket.destroy()
      t.match(head, /^HTTP\/1\.1 407 /)
      t.match(head, /x-portcullis-decision: denied_auth_invalid/i)
      const rec = await pc.waitForRecord<DecisionRecord>(
        (x) => isDecision(x) && x.method === 'CONNECT' && x.sandbox === s.id,
      )
      t.match(rec, { agent: 'ci', detail: 'expired', labels: { task: 'old' } })
    })
  })

  t.test('limits count per sandbox: each has the template budget of its own', async (t) => {
    const a = await issue(pc, 'lim', '1h')
    const b = await issue(pc, 'lim', '1h')
    const statuses = async (s: Issued, n: number): Promise<number[]> => {
      const out: number[] = []
      for (let i = 0; i < n; i++)
        out.push((await proxiedGet(pc.proxyPort, at(`/lim-${s.id}-${i}`), s.user, s.token)).status)
      return out
    }
    t.same(await statuses(a, 4), [200, 200, 200, 429], 'sandbox a: 3 a minute, then 429')
    t.same(await statuses(b, 3), [200, 200, 200], 'sandbox b is not charged for a')
    const denied = pc.decisions().find((d) => d.sandbox === a.id && d.reason === 'denied_rate_limited')
    t.match(denied, { agent: 'lim', detail: 'requests_per_minute' })
  })

  t.test('revocation: new requests refused and open tunnels closed within a second', async (t) => {
    const s = await issue(pc, 'ci', '1h', { task: 'revoke-me' })
    t.equal((await proxiedGet(pc.proxyPort, at('/before-revoke'), s.user, s.token)).status, 200)
    const tls = await tlsThroughTunnel(pc.proxyPort, tlsOrigin.port, s, readFileSync(tlsOrigin.ca.certFile, 'utf8'))
    const closed = closeOf(tls, 'the tunnel to close after the revocation')
    const t0 = Date.now()
    const r = await adminCall<{ id: string; agent: string; expires_at: string }>(
      pc.adminUrl,
      'DELETE',
      `/api/sandboxes/${s.id}?by=test&reason=teardown`,
    )
    t.equal(r.status, 200)
    t.match(r.body, { id: s.id, agent: 'ci', revoked_by: 'test', reason: 'teardown' })
    t.equal(
      Date.parse(r.body.expires_at),
      Date.parse(s.expires_at) + 60_000,
      'a credential seen in use: kept to its own expiry (and the clock skew), whatever max_sandbox_ttl says later',
    )
    await closed
    t.ok(Date.now() - t0 < 1000, `the tunnel closed ${Date.now() - t0} ms after the revocation`)
    const after = await proxiedGet(pc.proxyPort, at('/after-revoke'), s.user, s.token, JSON_ACCEPT)
    t.equal(after.status, 407)
    t.match(JSON.parse(after.body), { detail: 'revoked' })
    const unseen = await issue(pc, 'ci', '1h', { task: 'never-used' })
    const kept = await adminCall<{ expires_at: string }>(pc.adminUrl, 'DELETE', `/api/sandboxes/${unseen.id}`)
    t.equal(
      Date.parse(kept.body.expires_at),
      idTimeMs(unseen.id) + 30 * 24 * 3600_000 + 60_000,
      'never seen: kept as long as any config could let a credential live',
    )
    const again = await adminCall<{ already: boolean }>(pc.adminUrl, 'DELETE', `/api/sandboxes/${s.id}`)
    t.match(again, { status: 200, body: { already: true } })
    // Not a ULID (its first character past 7), or dated in the future: no credential can carry it
    // now, and a revocation of it would be kept for centuries.
    for (const bad of ['ZZZZZZZZZZZZZZZZZZZZZZZZZZ', '8ZZZZZZZZZZZZZZZZZZZZZZZZZ', '7ZZZZZZZZZZZZZZZZZZZZZZZZZ'])
      t.match(
        await adminCall(pc.adminUrl, 'DELETE', `/api/sandboxes/${bad}`),
        { status: 400, body: { error: 'bad_id' } },
        bad,
      )

    t.test('GET /api/sandboxes: seen (last request, counts) and revoked', async (t) => {
      const list = await adminCall<{
        sandboxes: Array<{ id: string; allowed: number; denied: number; revoked: boolean; labels: object }>
        revoked: Array<{ id: string }>
      }>(pc.adminUrl, 'GET', '/api/sandboxes')
      t.equal(list.status, 200)
      const mine = list.body.sandboxes.find((x) => x.id === s.id)
      t.match(mine, { revoked: true, state: 'revoked', labels: { task: 'revoke-me' } })
      t.ok(mine !== undefined && mine.allowed >= 2 && mine.denied >= 1, JSON.stringify(mine))
      t.ok(list.body.revoked.some((x) => x.id === s.id))
    })
  })

  t.test('a template with source_cidrs: its sandboxes from there, never the address alone', async (t) => {
    const s = await issue(pc, 'pinned', '1h', { task: 'pinned' })
    const from = (extra: string[]) =>
      curl(['--interface', '127.0.0.9', '-x', `http://127.0.0.1:${pc.proxyPort}`, ...extra, at('/pinned')])
    const bare = await from([])
    t.equal(bare.status, 407, 'no credential from inside the range')
    t.equal(bare.headers['x-portcullis-decision'], 'denied_auth_required')
    t.equal((await from(['--proxy-user', `${s.user}:${s.token}`])).status, 200, 'its sandbox credential')
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/sandboxes/${s.id}`)).status, 200)
    t.equal((await from(['--proxy-user', `${s.user}:${s.token}`])).status, 407, 'revoked')
    t.equal((await from([])).status, 407, 'and dropping the credential does not get round it')
  })

  t.test('revocation closes an intercepted connection too', async (t) => {
    const s = await issue(pc, 'ci', '1h')
    const { socket, head } = await openTunnel(pc.proxyPort, `paths.test:${tlsOrigin.port}`, s.user, s.token)
    t.match(head, /^HTTP\/1\.1 200 /)
    // Intercepted (the rule has paths): the client's TLS ends at the proxy, under the Portcullis CA.
    const tls = tlsConnect({ socket, servername: 'paths.test', ca: readFileSync(`${pc.dir}/ca.pem`, 'utf8') })
    tls.on('error', () => undefined)
    await once(tls, 'secureConnect')
    // Reading, as a client would: a paused socket holding unread bytes never emits close on a FIN.
    tls.resume()
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => isDecision(x) && x.method === 'CONNECT' && x.sandbox === s.id,
    )
    t.equal(rec.tls, 'intercept')
    const closed = closeOf(tls, 'the intercepted connection to close after the revocation')
    const t0 = Date.now()
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/sandboxes/${s.id}`)).status, 200)
    // Should it fail, say which side did not see the close: the proxy records one when it closes.
    await closed.catch((err: Error) => {
      const closeRecord = pc.records().find((x) => x.event === 'close' && x.id === rec.id)
      throw new Error(`${err.message}; the proxy's close record: ${JSON.stringify(closeRecord ?? null)}`)
    })
    t.ok(Date.now() - t0 < 1000, `closed ${Date.now() - t0} ms after the revocation`)
  })

  t.test('revocation cuts a plain-HTTP answer in flight (a download, an event stream)', async (t) => {
    const s = await issue(pc, 'ci', '1h')
    const { socket } = await openRaw(pc.proxyPort)
    socket.write(
      `GET ${at('/stream')} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: ${basicAuth(s.user, s.token)}\r\n\r\n`,
    )
    const [first] = (await once(socket, 'data')) as [Buffer]
    t.match(first.toString('latin1'), /^HTTP\/1\.1 200 /)
    socket.resume()
    const closed = closeOf(socket, 'the streaming answer to be cut after the revocation')
    const t0 = Date.now()
    t.equal((await adminCall(pc.adminUrl, 'DELETE', `/api/sandboxes/${s.id}`)).status, 200)
    await closed
    t.ok(Date.now() - t0 < 1000, `cut ${Date.now() - t0} ms after the revocation`)
    const rec = await pc.waitForRecord<DecisionRecord>(
      (x) => isDecision(x) && x.path === '/stream' && x.sandbox === s.id,
    )
    await pc.waitForRecord((x) => x.event === 'close' && x.id === rec.id)
  })

  t.test('expiry is checked per request on a kept-alive connection', async (t) => {
    const s = signed('ci', Date.now(), 2)
    const { socket } = await openRaw(pc.proxyPort)
    const ask = async (path: string): Promise<string> => {
      socket.write(
        `GET ${at(path)} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nProxy-Authorization: ${basicAuth(s.user, s.token)}\r\n\r\n`,
      )
      let text = ''
      while (!/\r\n\r\n[\s\S]*\n$/.test(text)) text += ((await once(socket, 'data')) as [Buffer])[0].toString('latin1')
      return text
    }
    t.match(await ask('/kept-1'), /^HTTP\/1\.1 200 /)
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(s.expires_at) - Date.now() + 50)))
    const second = await ask('/kept-2')
    t.match(second, /^HTTP\/1\.1 407 /)
    t.match(second, /x-portcullis-decision: denied_auth_invalid/i)
    const rec = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === '/kept-2')
    t.match(rec, { detail: 'expired', sandbox: s.id, agent: 'ci', sandbox_expires_at: s.expires_at })
    socket.destroy()
    const list = await adminCall<{ sandboxes: Array<{ id: string; state: string; expires_at: string | null }> }>(
      pc.adminUrl,
      'GET',
      '/api/sandboxes',
    )
    t.match(
      list.body.sandboxes.find((x) => x.id === s.id),
      { state: 'expired', expires_at: s.expires_at },
      'the sandbox list tells it expired, not active',
    )
  })

  t.test('a credential expiring closes its open tunnel at expiry', async (t) => {
    const s = signed('ci', Date.now(), 2)
    const tls = await tlsThroughTunnel(pc.proxyPort, tlsOrigin.port, s, readFileSync(tlsOrigin.ca.certFile, 'utf8'))
    await closeOf(tls, 'the tunnel to close at expiry')
    const late = Date.now() - Date.parse(s.expires_at)
    t.ok(late < 1000, `closed ${late} ms after expiry`)
  })

  t.test('a reload that lowers max_sandbox_ttl below a credential’s lifetime closes its open tunnel', async (t) => {
    const s = await issue(pc, 'ci', '2h', { task: 'long' })
    const tls = await tlsThroughTunnel(pc.proxyPort, tlsOrigin.port, s, readFileSync(tlsOrigin.ca.certFile, 'utf8'))
    const closed = closeOf(tls, 'the tunnel to close after the reload')
    const t0 = Date.now()
    pc.rewriteConfig(configWith('1h'))
    t.equal((await adminCall(pc.adminUrl, 'POST', '/api/reload')).status, 200)
    await closed
    t.ok(Date.now() - t0 < 1500, `closed ${Date.now() - t0} ms after the reload`)
    const after = await proxiedGet(pc.proxyPort, at('/after-ttl'), s.user, s.token, JSON_ACCEPT)
    t.equal(after.status, 407)
    t.match(JSON.parse(after.body), { detail: 'ttl_exceeds_max' })
    pc.rewriteConfig(configWith('24h'))
    t.equal((await adminCall(pc.adminUrl, 'POST', '/api/reload')).status, 200)
    t.equal((await proxiedGet(pc.proxyPort, at('/ttl-back'), s.user, s.token)).status, 200, 'and back at 24h it works')
  })

  t.test('approvals from a sandbox request: the agent, or that sandbox only', async (t) => {
    const a = await issue(pc, 'ci', '1h')
    const b = await issue(pc, 'ci', '1h')
    const blocked = async (s: Issued, path: string): Promise<number> =>
      (await proxiedGet(pc.proxyPort, at(path, 'other.test'), s.user, s.token)).status
    t.equal(await blocked(a, '/only-a'), 403)
    const rec = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === '/only-a')
    const only = await adminCall<{ sandbox: string; covers: string }>(pc.adminUrl, 'POST', '/api/approvals', {
      request_id: rec.id,
      scope: 'exact',
      sandbox_only: true,
    })
    t.equal(only.status, 201)
    t.match(only.body, { sandbox: a.id, covers: new RegExp(`from sandbox ${a.id} only`) })
    const audit = await pc.waitForRecord<ApprovalRecord>((x) => x.event === 'approval' && x.request_id === rec.id)
    t.match(audit, { action: 'create', sandbox: a.id }, 'the audit record says it is for that sandbox alone')
    t.ok(await until(async () => (await blocked(a, '/only-a')) === 200), 'sandbox a may now')
    t.equal(await blocked(b, '/only-a'), 403, 'sandbox b of the same agent may not')

    t.equal(await blocked(b, '/every-sandbox'), 403)
    const rec2 = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === '/every-sandbox')
    const agentWide = await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: rec2.id, scope: 'exact' })
    t.equal(agentWide.status, 201)
    const wide = await pc.waitForRecord<ApprovalRecord>((x) => x.event === 'approval' && x.request_id === rec2.id)
    t.notOk('sandbox' in wide, 'an agent-wide one names no sandbox')
    t.ok(await until(async () => (await blocked(a, '/every-sandbox')) === 200), 'another sandbox of the agent may')

    t.test('sandbox_only on a request without a sandbox is refused', async (t) => {
      const r = await proxiedGet(pc.proxyPort, at('/plain-denied', 'other.test'), 'plain', TOKEN)
      t.equal(r.status, 403)
      const d = await pc.waitForRecord<DecisionRecord>((x) => isDecision(x) && x.path === '/plain-denied')
      const refused = await adminCall(pc.adminUrl, 'POST', '/api/approvals', { request_id: d.id, sandbox_only: true })
      t.equal(refused.status, 409)
    })
  })

  t.test('a credential lives at least the ttl asked for, and no longer than it was signed for', async (t) => {
    for (let i = 0; i < 3; i++) {
      const before = Date.now()
      const s = await issue(pc, 'ci', '1s')
      t.ok(Date.parse(s.expires_at) >= before + 1000, `expires_at ${s.expires_at} is at least 1 s after ${before}`)
      const claims = JSON.parse(Buffer.from(s.token.split('.')[1] ?? '', 'base64url').toString()) as {
        iat: number
        exp: number
      }
      t.equal(claims.exp - claims.iat, 1, 'signed for exactly the ttl')
      const r = await proxiedGet(pc.proxyPort, at('/one-second'), s.user, s.token)
      t.equal(r.status, 200, `usable at once: ${r.body}`)
      await new Promise((r) => setTimeout(r, 137))
    }
  })

  t.test('a label key given twice is refused, not last-wins', async (t) => {
    // Written by hand: JSON.stringify cannot give a key twice, a client's JSON can.
    const r = await fetch(`${pc.adminUrl}/api/sandboxes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{"agent":"ci","ttl":"1h","labels":{"task":"T-1","task":"T-2"}}',
    })
    t.equal(r.status, 400)
    t.same(await r.json(), { error: 'bad_labels', message: "labels: key 'task' is given twice" })
  })

  t.test('the admin API refuses what it must not issue', async (t) => {
    const cases: Array<[string, object, number, string]> = [
      ['an unknown agent', { agent: 'nobody', ttl: '1h' }, 404, 'unknown_agent'],
      ['an agent that is not a template', { agent: 'plain', ttl: '1h' }, 400, 'not_a_template'],
      ['a ttl over max_sandbox_ttl', { agent: 'ci', ttl: '25h' }, 400, 'bad_ttl'],
      ['a bad label key', { agent: 'ci', ttl: '1h', labels: { 'bad key': 'x' } }, 400, 'bad_labels'],
      // JSON.parse makes `__proto__` an own key, as a client's JSON body would; it was dropped and 201 answered.
      [
        'a __proto__ label',
        { agent: 'ci', ttl: '1h', labels: JSON.parse('{"__proto__":"x"}') as object },
        400,
        'bad_labels',
      ],
      ['labels that are not strings', { agent: 'ci', ttl: '1h', labels: { a: 1 } }, 400, 'bad_request'],
    ]
    for (const [name, body, status, error] of cases)
      t.test(name, async (t) => {
        const r = await adminCall<Record<string, unknown>>(pc.adminUrl, 'POST', '/api/sandboxes', body)
        t.equal(r.status, status)
        t.same(Object.keys(r.body).sort(), ['error', 'message'], "the API's one error shape")
        t.equal(r.body.error, error)
      })
  })
})

t.test('without a signing key: nothing issued, sandbox credentials refused, /healthz says why', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port])}
groups: { g: { allow: [ { host: origin.test } ] } }
agents:
  - { id: ci, groups: [g], sandboxes: true }
`,
    {},
    { env: { PORTCULLIS_SIGNING_KEY: '' } },
  )
  const r = await adminCall(pc.adminUrl, 'POST', '/api/sandboxes', { agent: 'ci', ttl: '1h' })
  t.match(r, { status: 503, body: { error: 'no_signing_key' } })
  const s = signed('ci', Date.now(), 3600)
  const answer = await proxiedGet(pc.proxyPort, `http://origin.test:${origin.port}/`, s.user, s.token, JSON_ACCEPT)
  t.equal(answer.status, 407)
  t.match(JSON.parse(answer.body), { detail: 'no_signing_key' })
  const health = (await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { warnings?: string[] }
  t.match(JSON.stringify(health), /PORTCULLIS_SIGNING_KEY/)
  t.ok(pc.logLines().some((l) => l.includes('PC_SANDBOX_KEY_UNUSABLE')))
})

/** A plain TCP connection to the proxy. */
async function openRaw(port: number): Promise<{ socket: Socket }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  return { socket }
}

/**
 * The socket's close (by FIN or by reset: a revocation aborts the connection), or a failure after 5 s
 * naming what it was waiting for: a connection the proxy should have closed and did not must fail the
 * test at once, not hang the file until tap's timeout.
 */
function closeOf(socket: Socket, what = 'the connection to close'): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after 5 s waiting for ${what}`)), 5000)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** TLS to the origin through a CONNECT tunnel opened with a sandbox credential; resolves once secure. */
async function tlsThroughTunnel(proxyPort: number, originPort: number, s: Issued, ca: string): Promise<TLSSocket> {
  const { socket, head } = await openTunnel(proxyPort, `origin.test:${originPort}`, s.user, s.token)
  if (!/^HTTP\/1\.1 200 /.test(head)) throw new Error(`CONNECT refused: ${head}`)
  const tls = tlsConnect({ socket, servername: 'origin.test', ca })
  tls.on('error', () => undefined)
  await once(tls, 'secureConnect')
  // Reading, as a client would: a paused socket holding unread bytes never emits close on a FIN.
  tls.resume()
  return tls
}
