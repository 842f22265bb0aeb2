import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Route } from '../server.js'

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
}

/**
 * The analyst page: static files read once at start-up, served open (they hold
 * no data; every API call they make carries the bearer token). A strict CSP
 * keeps the page to its own origin: no CDN, no inline script.
 */
export function pageRoutes(): Route[] {
  const dir = fileURLToPath(new URL('../page/', import.meta.url))
  const files = new Map(Object.keys(TYPES).map((name) => [name, readFileSync(`${dir}${name}`)]))
  const serve =
    (name: string): Route['handler'] =>
    (_req, res) => {
      const body = files.get(name) as Buffer
      res.writeHead(200, {
        'content-type': TYPES[name] as string,
        'content-length': body.length,
        'cache-control': 'no-cache',
        'content-security-policy':
          "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      })
      res.end(body)
    }
  return [
    { method: 'GET', path: '/', open: true, handler: serve('index.html') },
    { method: 'GET', path: '/page/app.js', open: true, handler: serve('app.js') },
    { method: 'GET', path: '/page/style.css', open: true, handler: serve('style.css') },
  ]
}
