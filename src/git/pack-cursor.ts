/**
 * Sequential, bounded access to a pack for the object walk: a sliding window
 * over the source that hashes every byte once as it is first read (for the
 * trailing checksum), and the two ways to find where an object's zlib
 * stream ends — all at once for small objects, chunk by chunk (output
 * discarded) for large ones, so a big blob never sits in memory.
 */

import { createHash, type Hash } from 'node:crypto'
import { createInflate, inflateSync } from 'node:zlib'
import type { ObjectFormat } from './object-format.js'
import type { PackSource } from './pack-source.js'

/** How much the window reads ahead at a time. */
const READ_CHUNK = 1024 * 1024
/** Input handed to the streaming inflater per step. */
const STREAM_CHUNK = 64 * 1024

export type InflateProblem = 'truncated' | 'malformed' | 'size_mismatch' | 'stream_too_long' | 'read_error'

export type InflateResult =
  | { readonly ok: true; readonly consumed: number; readonly output: Buffer | null }
  | { readonly ok: false; readonly problem: InflateProblem }

/**
 * Longest compressed form we accept for `size` bytes of output. zlib's
 * deflateBound is about size + size/1000 + 13; twice the size plus 64 KiB is
 * far above what any packer emits, and stops a stream padded with empty
 * blocks from being read forever.
 */
export function maxCompressedLength(size: number): number {
  return 2 * size + 64 * 1024
}

export class PackCursor {
  private window: Buffer = Buffer.alloc(0)
  private windowStart = 0
  private readonly hash: Hash
  /** Bytes before this offset are covered by the trailing checksum. */
  private readonly hashEnd: number

  constructor(
    private readonly source: PackSource,
    format: ObjectFormat,
    trailerLength: number,
  ) {
    this.hash = createHash(format)
    this.hashEnd = Math.max(0, source.byteLength - trailerLength)
  }

  /**
   * At least min(n, bytes left) bytes starting at `at` (often more). `at`
   * never moves backwards: bytes before it are dropped from the window.
   */
  async peek(at: number, n: number): Promise<Buffer> {
    if (at < this.windowStart) throw new Error('pack cursor moved backwards')
    const windowEnd = this.windowStart + this.window.length
    if (at > windowEnd) throw new Error('pack cursor skipped bytes')
    const want = Math.min(n, this.source.byteLength - at)
    if (windowEnd - at < want) {
      const keep = this.window.subarray(at - this.windowStart)
      const fresh = await this.source.read(windowEnd, Math.max(READ_CHUNK, want - keep.length))
      this.hashRange(windowEnd, fresh)
      this.window = keep.length === 0 ? fresh : Buffer.concat([keep, fresh])
      this.windowStart = at
      if (fresh.length === 0 && keep.length < want) throw new Error('pack source ended early')
    }
    return this.window.subarray(at - this.windowStart)
  }

  /** The checksum of everything before the trailer; only meaningful once the trailer has been peeked. */
  digest(): Buffer {
    return this.hash.digest()
  }

  private hashRange(start: number, bytes: Buffer): void {
    if (start >= this.hashEnd) return
    this.hash.update(bytes.subarray(0, Math.max(0, this.hashEnd - start)))
  }

  /**
   * Inflate an object of `size` bytes whose zlib stream starts at `at`,
   * keeping the output. For objects small enough to hold (the caller decides).
   */
  async inflateWhole(at: number, size: number): Promise<InflateResult> {
    const limit = maxCompressedLength(size)
    let want = Math.min(limit, size + 1024)
    for (;;) {
      let input: Buffer
      try {
        input = (await this.peek(at, want)).subarray(0, limit)
      } catch {
        return { ok: false, problem: 'read_error' }
      }
      const res = inflateBuffer(input, size)
      if (res !== 'need_more') return res
      if (input.length >= limit) return { ok: false, problem: 'stream_too_long' }
      if (at + input.length >= this.source.byteLength) return { ok: false, problem: 'truncated' }
      want = Math.min(limit, input.length * 2)
    }
  }

  /** Inflate and discard an object of `size` bytes at `at`, in bounded steps. */
  async inflateDiscard(at: number, size: number): Promise<InflateResult> {
    const limit = maxCompressedLength(size)
    const inf = createInflate({ chunkSize: STREAM_CHUNK })
    let produced = 0
    let failure: Error | null = null
    inf.on('data', (d: Buffer) => (produced += d.length))
    inf.on('error', (e: Error) => (failure = e))
    // Settles when the stream ends cleanly or is torn down by an error ('close' follows 'error').
    const ended = new Promise<void>((resolve) => {
      inf.once('end', resolve)
      inf.once('close', resolve)
    })
    try {
      let fed = 0
      for (;;) {
        if (fed >= limit) return { ok: false, problem: 'stream_too_long' }
        let chunk: Buffer
        try {
          chunk = (await this.peek(at + fed, STREAM_CHUNK)).subarray(0, Math.min(STREAM_CHUNK, limit - fed))
        } catch {
          return { ok: false, problem: 'read_error' }
        }
        if (chunk.length === 0) {
          // The source ended: the stream is whole only if zlib finishes cleanly on what it has.
          inf.end()
          await ended
          if (failure !== null) return { ok: false, problem: 'truncated' }
          return settle(produced, size, inf.bytesWritten)
        }
        // A zlib error destroys the stream without calling back the write: wait for either.
        await Promise.race([new Promise<void>((resolve) => inf.write(chunk, () => resolve())), ended])
        if (failure !== null) return { ok: false, problem: 'malformed' }
        fed += chunk.length
        if (produced > size) return { ok: false, problem: 'size_mismatch' }
        // zlib stops taking input at the end of the stream: what it took is the stream's length.
        if (inf.bytesWritten < fed) {
          await ended
          if (failure !== null) return { ok: false, problem: 'malformed' }
          return settle(produced, size, inf.bytesWritten)
        }
      }
    } finally {
      inf.destroy()
    }
  }
}

function settle(produced: number, size: number, consumed: number): InflateResult {
  return produced === size ? { ok: true, consumed, output: null } : { ok: false, problem: 'size_mismatch' }
}

/** Inflate `input` (which may run past the stream's end) expecting exactly `size` bytes. */
export function inflateBuffer(input: Buffer, size: number): InflateResult | 'need_more' {
  try {
    const { buffer, engine } = inflateSync(input, { info: true, maxOutputLength: Math.max(1, size) }) as unknown as {
      buffer: Buffer
      engine: { bytesWritten: number }
    }
    if (buffer.length !== size) return { ok: false, problem: 'size_mismatch' }
    return { ok: true, consumed: engine.bytesWritten, output: buffer }
  } catch (e) {
    const code = (e as { code?: unknown }).code
    if (code === 'Z_BUF_ERROR') return 'need_more'
    if (code === 'ERR_BUFFER_TOO_LARGE') return { ok: false, problem: 'size_mismatch' }
    return { ok: false, problem: 'malformed' }
  }
}
