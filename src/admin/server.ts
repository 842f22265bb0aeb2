import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>

export interface Route {
  readonly method: string
  /** Exact path, or a prefix ending in `/` for parameterised routes. */
  readonly path: string
  /** Open routes need no token (only /healthz per SPEC §5). */
  readonly open?: boolean
  readonly handler: Handler
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}

function bearerMatches(header: string | undefined, tokenHash: Buffer): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  const given = createHash('sha256')
    .update(m?.[1] ?? '')
    .digest()
  return timingSafeEqual(given, tokenHash) && m !== null
}

/**
 * The admin listener: a tiny router, bearer token compared in constant time
 * (as a sha256 digest, so lengths never leak), /healthz open. Handlers never
 * see an unauthenticated request.
 */
/**
 * The admin listener's own bounds: a request head within headTimeoutMs, a whole request within
 * 30 s (node checks both every second; at its default of 30 s a trickled head lasted 31 s), and at
 * most maxConnections at once (SSE subscribers included), so idle admin connections cannot take the
 * descriptors listen.max_connections counts on.
 */
export interface AdminServerLimits {
  readonly headTimeoutMs: number
  readonly maxConnections: number
}

export const ADMIN_SERVER_LIMITS: AdminServerLimits = { headTimeoutMs: 10_000, maxConnections: 256 }

export function createAdminServer(
  routes: readonly Route[],
  adminToken: string,
  onError: (err: unknown) => void,
  limits: AdminServerLimits = ADMIN_SERVER_LIMITS,
): Server {
  const tokenHash = createHash('sha256').update(adminToken).digest()
  const server = createServer(
    { headersTimeout: limits.headTimeoutMs, requestTimeout: 30_000, connectionsCheckingInterval: 1000 },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'http://admin.invalid')
      // HEAD is GET without the body (node drops it), as probes and `curl -I` expect.
      const method = req.method === 'HEAD' ? 'GET' : req.method
      const route = routes.find(
        (r) =>
          r.method === method &&
          (r.path === url.pathname ||
            (r.path !== '/' &&
              r.path.endsWith('/') &&
              url.pathname.startsWith(r.path) &&
              url.pathname.length > r.path.length)),
      )
      if (!route) {
        const known = routes.some((r) => r.path === url.pathname)
        return sendJson(res, known ? 405 : 404, { error: known ? 'method_not_allowed' : 'not_found' })
      }
      if (!route.open && !bearerMatches(req.headers.authorization, tokenHash)) {
        res.setHeader('www-authenticate', 'Bearer realm="portcullis-admin"')
        return sendJson(res, 401, {
          error: 'unauthorized',
          message: 'send Authorization: Bearer <PORTCULLIS_ADMIN_TOKEN>',
        })
      }
      const fail = (err: unknown): void => {
        onError(err)
        if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' })
        else res.destroy()
      }
      // A handler that throws before its first await fails like one that rejects (not an uncaught exception).
      let done: void | Promise<void>
      try {
        done = route.handler(req, res, url)
      } catch (err) {
        return fail(err)
      }
      Promise.resolve(done).catch(fail)
    },
  )
  server.maxConnections = limits.maxConnections
  return server
}
