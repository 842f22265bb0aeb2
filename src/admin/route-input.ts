import type { IncomingMessage, ServerResponse } from 'node:http'
import type { z } from 'zod'
import { sendJson } from './server.js'

const MAX_BODY = 16 * 1024

/** A request's JSON body (an empty one is `{}`) and the first key it gives twice; throws when it is over 16 KiB or not JSON. */
export async function readJson(req: IncomingMessage): Promise<{ value: unknown; repeated: string[] | null }> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new Error('body_too_large')
    chunks.push(c as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8') || '{}'
  return { value: JSON.parse(text) as unknown, repeated: repeatedKey(text) }
}

/**
 * The path to the first key an object of a valid JSON text gives twice (`['labels', 'task']`; an
 * array step is `[]`), else null. JSON.parse keeps the last silently, so a body could say two
 * things at once and mean whichever the reader picks.
 */
export function repeatedKey(text: string): string[] | null {
  // One frame per open object (its keys so far, the key being read) or array (no keys).
  const frames: Array<{ keys: Set<string> | null; key: string }> = []
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const top = frames.at(-1)
      if (expectKey && top?.keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string
        if (top.keys.has(key)) return [...frames.slice(0, -1).map((f) => f.key), key]
        top.keys.add(key)
        top.key = key
      }
      expectKey = false
      i = j
    } else if (c === '{') {
      frames.push({ keys: new Set(), key: '' })
      expectKey = true
    } else if (c === '[') frames.push({ keys: null, key: '[]' })
    else if (c === '}' || c === ']') frames.pop()
    else if (c === ',') expectKey = (frames.at(-1)?.keys ?? null) !== null
  }
  return null
}

/**
 * A request's JSON body checked against its schema. When the body is unreadable or does not fit,
 * answers 400 with what is wrong (field path: problem) and resolves to null.
 */
export async function readBody<S extends z.ZodType>(
  req: IncomingMessage,
  res: ServerResponse,
  schema: S,
  /** The error a key given twice under a top-level field answers (`{ labels: 'bad_labels' }`); else bad_request. */
  repeatedKeyErrors: Readonly<Record<string, string>> = {},
): Promise<z.output<S> | null> {
  let raw: { value: unknown; repeated: string[] | null }
  try {
    raw = await readJson(req)
  } catch {
    sendJson(res, 400, { error: 'bad_body', message: 'send a JSON object of at most 16 KiB' })
    return null
  }
  if (raw.repeated !== null) {
    const key = raw.repeated.at(-1) ?? ''
    const where = raw.repeated.slice(0, -1).join('.') || 'body'
    sendJson(res, 400, {
      error: repeatedKeyErrors[raw.repeated.length > 1 ? (raw.repeated[0] ?? '') : ''] ?? 'bad_request',
      message: `${where}: key '${key.slice(0, 70)}' is given twice`,
    })
    return null
  }
  const body = schema.safeParse(raw.value)
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
