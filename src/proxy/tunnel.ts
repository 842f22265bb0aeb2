import type { Socket } from 'node:net'
import { pipeline } from 'node:stream'
import { buildCloseRecord } from '../telemetry/events.js'
import type { ProxyDeps } from './deps.js'
import type { TrackedConn } from './tracker.js'

export interface TunnelInfo {
  readonly id: string
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly startedAtMs: number
}

/**
 * Splice client and upstream with stream.pipeline both ways. No per-chunk JS:
 * byte counts come from the upstream socket's own counters at close. Either
 * side idle for idleTimeoutMs, or either side failing, closes both.
 */
export function spliceTunnel(client: Socket, upstream: Socket, first: Buffer, info: TunnelInfo, idleTimeoutMs: number, deps: Pick<ProxyDeps, 'bus' | 'tracker' | 'limiter'>): void {
  const close = (): void => {
    client.destroy()
    upstream.destroy()
  }
  const tracked: TrackedConn = { agent: info.agent, host: info.host, port: info.port, close, bytesMoved: () => upstream.bytesWritten + upstream.bytesRead, bytesCounted: 0 }
  const untrack = deps.tracker.add(tracked)
  let open = 2
  const onClose = (): void => {
    open -= 1
    if (open === 1) {
      // One side is gone: the other gets a short grace period to flush, then goes too.
      setTimeout(close, 5000).unref()
      return
    }
    untrack()
    deps.limiter.addBytes(info.agent, upstream.bytesWritten + upstream.bytesRead - (tracked.bytesCounted ?? 0))
    deps.bus.publish(buildCloseRecord(info, upstream.bytesWritten, upstream.bytesRead, info.startedAtMs))
  }
  client.once('close', onClose)
  upstream.once('close', onClose)
  client.setTimeout(idleTimeoutMs, close)
  upstream.setTimeout(idleTimeoutMs, close)
  upstream.setNoDelay(true)
  client.setNoDelay(true)
  if (first.length > 0) upstream.write(first)
  pipeline(client, upstream, (err) => {
    if (err) close()
  })
  pipeline(upstream, client, (err) => {
    if (err) close()
  })
}
