/**
 * One inspect_body scan: undo the body's Content-Encoding within the caps, then look for
 * credentials in the request target, the header names and values, the body as sent and the body
 * decoded. No I/O and no clock; synchronous, so it runs in a scan worker (scan-worker.ts) or,
 * for small bodies, where it is called.
 */
import { Buffer } from 'node:buffer'
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync, type ZlibOptions } from 'node:zlib'
import { findSecret } from './secret-scan.js'

export interface ScanLimits {
  /** The most characters scanned for one request: target, headers, body as sent and decoded, together. */
  readonly maxBytes: number
  /** A decoded body may be at most this many times the body as sent… */
  readonly maxInflateRatio: number
  /** …or this many bytes, whichever is more (a tiny body of JSON may compress better than the ratio). */
  readonly inflateFloorBytes: number
}

export interface ScanJob {
  readonly target: string
  /** Header names and values, alternating, as received. */
  readonly rawHeaders: readonly string[]
  readonly contentEncoding: string | undefined
  readonly body: Uint8Array
}

/** Why a request could not be inspected; every one fails closed. */
export type UninspectableDetail =
  /** Target, headers and body together (or the body once decoded) exceed `maxBytes`. */
  | 'too_large'
  /** The body decodes to more than `maxInflateRatio` times its size (a compression bomb). */
  | 'inflation_ratio'
  | 'unknown_encoding'
  | 'corrupt_encoding'
  /** More than MAX_CODINGS stacked Content-Encodings. */
  | 'too_many_encodings'
  /** The client stopped sending before the body was whole. */
  | 'cut_off'
  /** The agent already has its share of inspections running and queued. */
  | 'busy'
  /** The scan itself failed (a worker died): a bug or resource exhaustion. */
  | 'scan_failed'
  /** The inspector was closed while the request waited. */
  | 'closed'

export type ScanVerdict =
  | { readonly kind: 'clean' }
  | { readonly kind: 'secret'; readonly detector: string }
  | { readonly kind: 'uninspectable'; readonly detail: UninspectableDetail }

/** `gzip, br` is as far as real clients stack; more is refused rather than decoded. */
export const MAX_CODINGS = 2

const DECODERS: Record<string, (b: Uint8Array, o: ZlibOptions) => Buffer> = {
  gzip: gunzipSync,
  'x-gzip': gunzipSync,
  br: brotliDecompressSync,
  deflate: inflateEither,
}

/**
 * The base64 of `Basic <base64>` with any spaces in it taken out, or null. No regular expression with
 * overlapping repeats: a header value is the client's, and backtracking on it would hold the scanner.
 */
function basicCredentials(part: string): string | null {
  const value = part.trim()
  if (value.length < 6 || value.slice(0, 5).toLowerCase() !== 'basic' || !/^[ \t]$/.test(value[5] as string))
    return null
  const encoded = value.slice(6).replace(/[ \t]+/g, '')
  return BASE64.test(encoded) ? encoded : null
}
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

/** What the target and headers count against `maxBytes`. */
export function measureHead(target: string, rawHeaders: readonly string[]): number {
  let n = target.length
  for (const h of rawHeaders) n += h.length
  return n
}

export function scanRequest(job: ScanJob, limits: ScanLimits): ScanVerdict {
  const budget = limits.maxBytes - measureHead(job.target, job.rawHeaders) - job.body.length
  if (budget < 0) return uninspectable('too_large')
  const decoded = decodeBody(job.body, job.contentEncoding, budget, limits)
  if ('detail' in decoded) return decoded
  const texts = [job.target, ...job.rawHeaders, latin1(job.body)]
  // The body as sent as well as decoded: a decoder stops at the end of its stream and ignores what follows.
  if (decoded.body !== job.body) texts.push(latin1(decoded.body))
  // HTTP Basic is how tokens travel (git with a token, `curl -u`): its user:password is read as a server reads it.
  // A list (`Basic a, Basic b`) and base64 broken by spaces are read too: lenient decoders drop them.
  for (let i = 0; i + 1 < job.rawHeaders.length; i += 2)
    if ((job.rawHeaders[i] as string).toLowerCase() === 'authorization')
      for (const part of (job.rawHeaders[i + 1] as string).split(',')) {
        const encoded = basicCredentials(part)
        if (encoded !== null) texts.push(Buffer.from(encoded, 'base64').toString('latin1'))
      }
  const detector = findSecret(texts)
  return detector === null ? { kind: 'clean' } : { kind: 'secret', detector }
}

/**
 * The body with its Content-Encoding undone, last coding first, each step's output held to
 * `budget` and to the inflation ratio of the body as sent.
 */
function decodeBody(
  body: Uint8Array,
  contentEncoding: string | undefined,
  budget: number,
  limits: ScanLimits,
): { readonly body: Uint8Array } | Extract<ScanVerdict, { kind: 'uninspectable' }> {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity')
  if (codings.length === 0 || body.length === 0) return { body }
  if (codings.length > MAX_CODINGS) return uninspectable('too_many_encodings')
  const byRatio = Math.max(limits.maxInflateRatio * body.length, limits.inflateFloorBytes)
  const limit = Math.min(byRatio, budget)
  if (limit < 1) return uninspectable('too_large')
  let out = body
  for (const coding of codings.reverse()) {
    const decoder = DECODERS[coding]
    if (decoder === undefined) return uninspectable('unknown_encoding')
    try {
      out = decoder(out, { maxOutputLength: limit })
    } catch (err) {
      if (!isTooLarge(err)) return uninspectable('corrupt_encoding')
      return uninspectable(limit === budget ? 'too_large' : 'inflation_ratio')
    }
  }
  return { body: out }
}

/** `deflate` is zlib-wrapped by the RFC, raw in some clients: try both. */
function inflateEither(body: Uint8Array, options: ZlibOptions): Buffer {
  try {
    return inflateSync(body, options)
  } catch (err) {
    if (isTooLarge(err)) throw err
    return inflateRawSync(body, options)
  }
}

/** zlib's refusal to produce more than `maxOutputLength`. */
function isTooLarge(err: unknown): boolean {
  return err instanceof RangeError && (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1')
}

function uninspectable(detail: UninspectableDetail): Extract<ScanVerdict, { kind: 'uninspectable' }> {
  return { kind: 'uninspectable', detail }
}
