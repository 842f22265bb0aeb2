import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { attachConnState } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import { handleConnect } from './connect.js'
import { handlePlainRequest } from './http-request.js'
import { respondBadRequest, respondDenial } from './respond.js'
import { internalError } from './decision-point.js'

/** Header size limit: a request head beyond this is answered 431 by the parser. */
export const MAX_HEADER_BYTES = 16 * 1024

/**
 * The proxy listener. Node's parser (strict mode, never insecureHTTPParser)
 * refuses most malformed heads itself; clientError turns those into a
 * 400/408/431 and a closed connection. Every handler fails closed: an
 * unexpected throw closes that connection and logs PC_ERR_INTERNAL.
 */
export function createProxyServer(deps: ProxyDeps): Server {
  const upstream = deps.config().upstream
  const server = createServer({
    headersTimeout: upstream.headerTimeoutMs,
    // A whole-request deadline would cut long uploads (git push); idle and header timeouts bound them instead.
    requestTimeout: 0,
    keepAliveTimeout: upstream.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, upstream.headerTimeoutMs),
    maxHeaderSize: MAX_HEADER_BYTES,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  })
  server.on('connection', (socket: Socket) => {
    attachConnState(socket)
    socket.on('error', () => socket.destroy())
  })
  server.on('request', (req, res) => {
    handlePlainRequest(deps, req, res).catch((err: unknown) => {
      deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'plain HTTP handler failed; connection closed')
      if (!res.headersSent) respondDenial(res, internalError, { requestId: '-', agent: null, method: req.method ?? '-', host: '-', port: 0, scheme: 'http', path: null, query: '', wantsJson: false }, true)
      else res.destroy()
    })
  })
  server.on('connect', (req, socket: Socket, head: Buffer) => {
    handleConnect(deps, req, socket, head).catch((err: unknown) => {
      deps.log.error({ code: 'PC_ERR_INTERNAL', err }, 'CONNECT handler failed; connection closed')
      socket.destroy()
    })
  })
  server.on('upgrade', (_req, socket: Duplex) => respondBadRequest(socket, 400, 'upgrade_not_supported'))
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? ''
    if (code === 'ECONNRESET' || !socket.writable) return void socket.destroy()
    if (code === 'HPE_HEADER_OVERFLOW') return respondBadRequest(socket, 431, 'headers_too_large')
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return respondBadRequest(socket, 408, 'header_timeout')
    respondBadRequest(socket, 400, code.startsWith('HPE_') ? code.slice(4).toLowerCase() : 'malformed')
  })
  return server
}
