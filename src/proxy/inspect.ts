import type { IncomingMessage } from 'node:http'
import { promisify } from 'node:util'
import { brotliDecompress, gunzip, inflate, inflateRaw } from 'node:zlib'
import { findSecret } from './secret-scan.js'

/** The most body inspect_body holds and scans, before and after decoding; a larger one cannot be inspected. */
export const INSPECT_MAX_BYTES = 8 * 1024 * 1024

export type Inspection =
  /** `body` is the request body exactly as received, to forward instead of the (consumed) stream. */
  | { readonly kind: 'clean'; readonly body: Buffer }
  | { readonly kind: 'secret'; readonly detector: string; readonly body: Buffer }
  /** Could not be read whole (too large, undecodable, cut off): fail closed. */
  | { readonly kind: 'uninspectable'; readonly detail: string }

const DECODERS: Record<string, (b: Buffer, o: { maxOutputLength: number }) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  br: promisify(brotliDecompress),
  // `deflate` is zlib-wrapped by the RFC, raw in some clients: try both.
  deflate: (b, o) => promisify(inflate)(b, o).catch(() => promisify(inflateRaw)(b, o)),
}

/**
 * inspect_body: read the whole body (bounded), decode its Content-Encoding
 * (bounded, off the event loop), and scan the request target, the header
 * values and the body for credentials. The body is held until the verdict,
 * so nothing of a request carrying a secret reaches upstream.
 */
export async function inspectRequest(req: IncomingMessage, requestTarget: string): Promise<Inspection> {
  const body = await readBounded(req, INSPECT_MAX_BYTES)
  if (body === 'too_large') return { kind: 'uninspectable', detail: 'body_too_large_to_inspect' }
  if (body === 'cut_off') return { kind: 'uninspectable', detail: 'body_cut_off' }
  const decoded = await decode(body, req.headers['content-encoding'])
  if (decoded === null) return { kind: 'uninspectable', detail: 'body_undecodable' }
  // Header names too (lower-cased by the client or not), and values as cookie and form parsers read them.
  const texts = readings(requestTarget)
  for (let i = 0; i < req.rawHeaders.length; i++) texts.push(...readings(req.rawHeaders[i] as string))
  // The body as sent as well as decoded: a decoder stops at the end of its stream and ignores what follows.
  if (decoded !== body) texts.push(...readings(body.toString('latin1')))
  texts.push(...readings(decoded.toString('latin1')))
  const detector = findSecret(texts)
  return detector === null ? { kind: 'clean', body } : { kind: 'secret', detector, body }
}

/**
 * The spellings an origin's parsers would turn back into the plain text: as written, percent-decoded
 * (queries, cookies, forms: `-----BEGIN+RSA+PRIVATE+KEY-----`), with JSON string escapes undone
 * (`\u0041KIA…`, `wJal\/…`), and UTF-16 read as text. Each is scanned.
 */
function readings(text: string): string[] {
  const out = [text]
  if (/[%+]/.test(text))
    out.push(
      text
        .replace(/\+/g, ' ')
        .replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    )
  if (text.includes('\\')) out.push(jsonUnescaped(text))
  if (text.includes('\0')) out.push(text.replace(/\0/g, ''))
  return out
}

const JSON_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
}

function jsonUnescaped(text: string): string {
  return text.replace(/\\(?:u([0-9A-Fa-f]{4})|(["\\/bfnrt]))/g, (_, hex: string | undefined, ch: string | undefined) =>
    hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : (JSON_ESCAPES[ch ?? ''] ?? ''),
  )
}

async function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer | 'too_large' | 'cut_off'> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > maxBytes) return 'too_large'
      chunks.push(chunk as Buffer)
    }
  } catch {
    return 'cut_off'
  }
  return req.complete ? Buffer.concat(chunks) : 'cut_off'
}

async function decode(body: Buffer, encoding: string | undefined): Promise<Buffer | null> {
  const name = (encoding ?? 'identity').trim().toLowerCase()
  if (name === 'identity' || name === '' || body.length === 0) return body
  const decoder = DECODERS[name]
  if (decoder === undefined) return null
  try {
    return await decoder(body, { maxOutputLength: INSPECT_MAX_BYTES })
  } catch {
    return null
  }
}
