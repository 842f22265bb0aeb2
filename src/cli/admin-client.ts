/**
 * The admin API as the CLI verbs that talk to a running instance (`blocked`,
 * `approve`, `approvals`) see it: where it is, which token to send, and one
 * error shape (PC_ERR_ADMIN_REQUEST, exit 1) with a message that says what to
 * fix: unreachable, token refused, or the server's own error.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { userInfo } from 'node:os'
import { readFile } from 'node:fs/promises'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import type { RuntimeConfig } from '../config/types.js'
import { AdminRequestError, PortcullisError } from '../errors.js'
import { adminTokenFile } from '../admin/token.js'
import { formatAuthority } from '../net/host.js'

export interface AdminTarget {
  readonly baseUrl: string
  readonly token: string | null
  /** Where the token came from, for error messages. */
  readonly tokenSource: string
}

export interface AdminClient {
  readonly baseUrl: string
  /** JSON request; resolves to the parsed body of a 2xx answer. */
  request<T = unknown>(method: string, pathAndQuery: string, body?: unknown): Promise<T>
  /** Opens a Server-Sent Events stream; resolves once the server answered 200. */
  openStream(pathAndQuery: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>>
}

const REQUEST_TIMEOUT_MS = 10_000

/** A listener on the unspecified address is reached on loopback. */
function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}

async function readTokenFile(file: string): Promise<string | null> {
  try {
    const text = (await readFile(file, 'utf8')).trim()
    return text === '' ? null : text
  } catch {
    return null
  }
}

/**
 * Base URL: `--admin URL`, else the config's admin section. Token:
 * PORTCULLIS_ADMIN_TOKEN, else `<dirname(tls.ca_key)>/admin-token` (where
 * `portcullis start` writes a generated one). With `--admin` the config is
 * read only to find that file, so a missing config is not an error then.
 */
export async function resolveAdminTarget(
  opts: { readonly admin?: string | undefined; readonly config?: string | undefined },
  env: NodeJS.ProcessEnv,
): Promise<AdminTarget> {
  let baseUrl: string | null = null
  if (opts.admin !== undefined) {
    let u: URL
    try {
      u = new URL(opts.admin)
    } catch {
      throw new PortcullisError('PC_ERR_USAGE', `--admin '${opts.admin}' is not a URL (e.g. http://127.0.0.1:9090)`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new PortcullisError('PC_ERR_USAGE', `--admin must be an http:// or https:// URL`)
    baseUrl = u.origin
  }
  const fromEnv = env.PORTCULLIS_ADMIN_TOKEN?.trim()
  if (baseUrl !== null && fromEnv) return { baseUrl, token: fromEnv, tokenSource: 'PORTCULLIS_ADMIN_TOKEN' }
  let config: RuntimeConfig | null = null
  try {
    config = await loadConfig(resolveConfigPath(opts.config, env), env)
  } catch (err) {
    if (baseUrl === null) throw err
  }
  if (baseUrl === null && config !== null)
    baseUrl = `http://${formatAuthority(dialHost(config.admin.host), config.admin.port)}`
  if (baseUrl === null) throw new PortcullisError('PC_ERR_USAGE', 'no admin URL: pass --admin URL or --config F')
  if (fromEnv) return { baseUrl, token: fromEnv, tokenSource: 'PORTCULLIS_ADMIN_TOKEN' }
  if (config !== null) {
    const file = adminTokenFile(config.tls.caKey)
    const token = await readTokenFile(file)
    if (token !== null) return { baseUrl, token, tokenSource: file }
  }
  return { baseUrl, token: null, tokenSource: 'none' }
}

function adminError(message: string, cause?: unknown): PortcullisError {
  return new PortcullisError('PC_ERR_ADMIN_REQUEST', message, cause === undefined ? undefined : { cause })
}

/** Errors a retry may fix (the instance is down or restarting), as opposed to a refused token or a bad query. */
const transient = new WeakSet<Error>()

export function isTransientAdminError(err: unknown): boolean {
  return err instanceof Error && transient.has(err)
}

/** The error's own code (ECONNREFUSED), or its cause's, or its message. */
function describeCause(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown; message?: unknown } }
  if (typeof e.code === 'string' && e.code !== 'ABORT_ERR') return e.code
  if (typeof e.cause?.code === 'string') return e.cause.code
  if (typeof e.cause?.message === 'string') return e.cause.message
  return err instanceof Error ? err.message : String(err)
}

function timedOut(err: unknown): boolean {
  const e = err as { name?: unknown; cause?: { name?: unknown } }
  return e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError'
}

function networkError(target: AdminTarget, err: unknown): PortcullisError {
  const e = timedOut(err)
    ? adminError(`the admin API at ${target.baseUrl} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`, err)
    : adminError(
        `cannot reach the admin API at ${target.baseUrl} (${describeCause(err)}); is portcullis running there? (set --admin URL)`,
        err,
      )
  transient.add(e)
  return e
}

function statusError(target: AdminTarget, path: string, status: number, text: string): PortcullisError {
  if (status === 401) {
    return adminError(
      target.token === null
        ? 'the admin API needs a token: set PORTCULLIS_ADMIN_TOKEN (or run where the admin-token file next to tls.ca_key is readable)'
        : `the admin API refused the token from ${target.tokenSource} (401); check PORTCULLIS_ADMIN_TOKEN`,
    )
  }
  let answer: { error: string; message: string } | null = null
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown }
    answer = { error: String(body.error ?? ''), message: String(body.message ?? body.error ?? '').slice(0, 300) }
  } catch {
    // Not JSON (a different server on that port?): the status alone is the message.
  }
  const route = path.split('?')[0] ?? path
  return new AdminRequestError(
    `admin API ${route}: HTTP ${status}${answer?.message ? `: ${answer.message}` : ''}`,
    status,
    answer,
  )
}

/**
 * One exchange with the admin API. node:http, not fetch: fetch refuses the ports browsers block
 * (6000, 6665–6669, 10080 …), and admin.port may well be one of them.
 */
function send(
  target: AdminTarget,
  method: string,
  pathAndQuery: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const url = new URL(`${target.baseUrl}${pathAndQuery}`)
  const open = url.protocol === 'https:' ? httpsRequest : httpRequest
  const sized = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }
  return new Promise((resolve, reject) => {
    const req = open(url, { method, headers: sized, signal }, resolve)
    req.on('error', reject)
    req.end(body)
  })
}

async function textOf(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export function createAdminClient(target: AdminTarget): AdminClient {
  const headers = (extra: Record<string, string>): Record<string, string> =>
    target.token === null ? extra : { ...extra, authorization: `Bearer ${target.token}` }
  const ok = (status: number | undefined): boolean => status !== undefined && status >= 200 && status < 300
  return {
    baseUrl: target.baseUrl,
    async request<T>(method: string, pathAndQuery: string, body?: unknown): Promise<T> {
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      let status: number
      let text: string
      try {
        const res = await send(
          target,
          method,
          pathAndQuery,
          headers(
            body === undefined
              ? { accept: 'application/json' }
              : { accept: 'application/json', 'content-type': 'application/json' },
          ),
          body === undefined ? undefined : JSON.stringify(body),
          signal,
        )
        status = res.statusCode ?? 0
        text = await textOf(res)
      } catch (err) {
        throw networkError(target, err)
      }
      if (!ok(status)) throw statusError(target, pathAndQuery, status, text)
      try {
        return JSON.parse(text) as T
      } catch (err) {
        throw adminError(`admin API ${pathAndQuery.split('?')[0]}: the answer is not JSON`, err)
      }
    },
    async openStream(pathAndQuery, signal) {
      let res: IncomingMessage
      try {
        res = await send(target, 'GET', pathAndQuery, headers({ accept: 'text/event-stream' }), undefined, signal)
      } catch (err) {
        throw networkError(target, err)
      }
      if (!ok(res.statusCode)) throw statusError(target, pathAndQuery, res.statusCode ?? 0, await textOf(res))
      return res
    },
  }
}

/** The flags of every verb that reads a running instance: where it is (`--admin`, `--config`) and `--json`. */
const ADMIN_VERB_FLAGS = {
  admin: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const

/**
 * Such a verb's argv (node:util parseArgs, strict): its own options plus ADMIN_VERB_FLAGS. The
 * positionals are the verb's to check.
 */
export function parseAdminVerbArgs<O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
) {
  return parseArgs({
    args: [...args],
    options: { ...ADMIN_VERB_FLAGS, ...options },
    allowPositionals: true,
    strict: true,
  })
}

export async function connectAdmin(
  opts: { readonly admin?: string | undefined; readonly config?: string | undefined },
  env: NodeJS.ProcessEnv,
): Promise<AdminClient> {
  return createAdminClient(await resolveAdminTarget(opts, env))
}

export interface SseEvent {
  readonly event: string
  readonly data: string
}

/**
 * A small Server-Sent Events parser (the WHATWG event-stream format, minus
 * `id`/`retry`, which the CLI does not use): feed it text chunks as they
 * arrive; it calls `onEvent` per complete event with data.
 */
export function createSseParser(onEvent: (e: SseEvent) => void): (chunk: string) => void {
  let buf = ''
  let event = ''
  let data: string[] = []
  const line = (l: string): void => {
    if (l === '') {
      if (data.length > 0) onEvent({ event: event || 'message', data: data.join('\n') })
      event = ''
      data = []
      return
    }
    if (l.startsWith(':')) return
    const colon = l.indexOf(':')
    const field = colon < 0 ? l : l.slice(0, colon)
    let value = colon < 0 ? '' : l.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  return (chunk) => {
    buf += chunk
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf)
      // A lone `\r` at the end may be the first half of `\r\n`: wait for more.
      if (!m || (m[0] === '\r' && m.index === buf.length - 1)) break
      line(buf.slice(0, m.index))
      buf = buf.slice(m.index + m[0].length)
    }
  }
}

/** Who is at the keyboard, for the audit trail of approvals and revocations (--by overrides it). */
export function whoami(env: NodeJS.ProcessEnv): string {
  try {
    return env.USER ?? userInfo().username
  } catch {
    return 'cli'
  }
}
