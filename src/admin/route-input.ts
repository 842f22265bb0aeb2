import type { IncomingMessage, ServerResponse } from 'node:http'
import type { z } from 'zod'
import { sendJson } from './server.js'

const MAX_BODY = 16 * 1024

/** A request's JSON body (an empty one is `{}`); throws when it is over 16 KiB or not JSON. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new Error('body_too_large')
    chunks.push(c as Buffer)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
}

/**
 * A request's JSON body checked against its schema. When the body is unreadable or does not fit,
 * answers 400 with what is wrong (field path: problem) and resolves to null.
 */
export async function readBody<S extends z.ZodType>(
  req: IncomingMessage,
  res: ServerResponse,
  schema: S,
): Promise<z.output<S> | null> {
  let raw: unknown
  try {
    raw = await readJson(req)
  } catch {
    sendJson(res, 400, { error: 'bad_body', message: 'send a JSON object of at most 16 KiB' })
    return null
  }
  const body = schema.safeParse(raw)
  if (body.success) return body.data
  sendJson(res, 400, {
    error: 'bad_request',
    message: body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
  })
  return null
}

/**
 * The id a `DELETE <prefix><id>` route names, percent-decoded; null when it is not valid
 * percent-encoding (`%zz`, a lone `%`): the caller answers 400, not a 500 from the URIError.
 */
export function idParam(url: URL, prefix: string): string | null {
  try {
    return decodeURIComponent(url.pathname.slice(prefix.length))
  } catch {
    return null
  }
}

/** The 400 for an id that is not valid percent-encoding. */
export function sendBadIdEncoding(res: ServerResponse): void {
  sendJson(res, 400, { error: 'bad_id', message: 'the id in the path is not valid percent-encoding' })
}

/** Who made a change, for the audit trail: `?by=NAME` (at most 100 characters), else `admin`. */
export function actorParam(url: URL): string {
  return (url.searchParams.get('by') ?? '').slice(0, 100) || 'admin'
}
