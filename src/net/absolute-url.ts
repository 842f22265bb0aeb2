/**
 * An absolute `http://` or `https://` URL split as the proxy reads an absolute-form request target
 * (request-flow.ts): the authority through parseAuthority (normalised host, port), userinfo refused
 * (credentials never travel in a target, and `a\@b` is read differently by different parsers), the
 * rest through splitTarget and normalizePath. The WHATWG URL parser is not used: it rewrites `\` to
 * `/` and moves the host, so it would explain a request the proxy never sees. PURE.
 */
import { parseAuthority } from './host.js'
import { normalizePath, splitTarget } from './url-path.js'

export interface AbsoluteUrl {
  readonly scheme: 'http' | 'https'
  readonly host: string
  readonly port: number
  /** normalizePath output. */
  readonly path: string
  /** Raw, without the `?`. */
  readonly query: string
}

const ABSOLUTE = /^(https?):\/\/([^/?#]*)(.*)$/is

/** The URL's parts, or why it cannot be read (a sentence). */
export function parseAbsoluteUrl(text: string): AbsoluteUrl | string {
  const m = ABSOLUTE.exec(text)
  if (!m) return 'the URL must be an absolute http:// or https:// URL'
  const scheme = (m[1] as string).toLowerCase() as 'http' | 'https'
  const authority = m[2] as string
  if (authority.includes('@')) return 'a URL with userinfo (user@host) is refused, as the proxy refuses it'
  const hostPort = authority === '' ? null : parseAuthority(authority, scheme === 'https' ? 443 : 80)
  if (hostPort === null) return `'${authority.slice(0, 100)}' is not a valid host[:port]`
  const rest = m[3] as string
  const { path: rawPath, query } = splitTarget(
    rest === '' || rest.startsWith('?') || rest.startsWith('#') ? `/${rest}` : rest,
  )
  const path = normalizePath(rawPath)
  if (path === null)
    return 'the URL path is malformed (bad %-escape, encoded NUL, control character, space or backslash)'
  return { scheme, host: hostPort.host, port: hostPort.port, path, query }
}
