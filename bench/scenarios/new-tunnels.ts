/** b. A new connection per request: (CONNECT +) TLS handshake + GET + close. */
import { compare, getAndClose, loopContender, openTunnel, tlsHandshake } from '../lib.js'
import { addSquidRow, reportErrors, type Ctx } from './context.js'

export const newTunnelsMethod = (ctx: Ctx): string =>
  `**b — new tunnels.** Raw sockets, ${ctx.s.newConnConcurrency} at a time: TCP to the proxy, \`CONNECT tunnel.test:<port>\`, 200, full TLS 1.3 handshake to the origin through the tunnel (no session reuse), \`GET /\` with \`Connection: close\`, read to EOF; direct = TLS to the origin + the same GET.`

export async function runNewTunnels(ctx: Ctx): Promise<void> {
  const { env: e, s } = ctx
  const t = { servername: 'tunnel.test', ca: e.origin.caPem }
  const authority = `tunnel.test:${e.origin.httpsPort}`
  const through = (port: number) => async () =>
    getAndClose(await tlsHandshake(await openTunnel(port, authority), t), 'tunnel.test')
  const loop = { concurrency: s.newConnConcurrency, maxOps: 5000 }
  const m = await compare(
    'new tunnels',
    [
      loopContender('direct', async () => getAndClose(await tlsHandshake(e.origin.httpsPort, t), 'tunnel.test'), loop),
      loopContender('bare', through(e.bare.port), { ...loop, pid: e.bare.pid }),
      loopContender('proxy', through(e.proxy.port), { ...loop, pid: e.proxy.pid }),
      ...(e.squid ? [loopContender('squid', through(e.squid.port), { ...loop, pid: e.squid.pid })] : []),
    ],
    s,
  )
  reportErrors(ctx, 'new tunnels', m)
  const {
    direct: d,
    bare: b,
    proxy: p,
  } = addSquidRow(ctx, m, {
    id: 'b',
    scenario: 'new tunnel + TLS handshake + GET + close',
    unit: 'conn/s',
  })
  ctx.report.note(
    `b: p50 per connection ${d.p50Ms.toFixed(1)} ms direct, ${b.p50Ms.toFixed(1)} ms bare, ${p.p50Ms.toFixed(1)} ms Portcullis (${s.newConnConcurrency} in flight).`,
  )
}
