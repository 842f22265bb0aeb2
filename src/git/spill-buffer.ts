/**
 * Hold a push body while the proxy decides (SPEC §8: "memory for a held pack
 * is bounded"). The first `memoryBytes` stay in memory; past that the whole
 * body goes to a private temporary file (a fresh mkdtemp directory, file mode
 * 0600) that is removed on close. More than `maxBytes` is refused with
 * `too_large` and nothing more is kept.
 *
 * The body can then be read back in bounded ranges (`read`, or `packSource`
 * for the pack reader) and replayed upstream as a stream (`createReadStream`),
 * never as one big buffer.
 */

import { createReadStream as createFileReadStream } from 'node:fs'
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { PackSource } from './pack-source.js'

export interface SpillBufferOptions {
  /** Bytes held in memory before spilling to disk. */
  readonly memoryBytes?: number
  /** Largest body accepted. */
  readonly maxBytes: number
  /** Parent directory for the temporary directory (default: os.tmpdir()). */
  readonly tmpDir?: string
}

export const DEFAULT_SPILL_MEMORY_BYTES = 4 * 1024 * 1024

export type AppendResult = { readonly kind: 'ok' } | { readonly kind: 'too_large' } | { readonly kind: 'closed' }

const READ_STREAM_CHUNK = 64 * 1024

export class SpillBuffer {
  private readonly memoryBytes: number
  private readonly maxBytes: number
  private readonly tmpDir: string
  private memory: Buffer
  private length = 0
  private file: { readonly dir: string; readonly path: string; readonly fh: FileHandle } | null = null
  private refused = false
  private closed = false
  /** Appends and reads run one at a time, in call order. */
  private chain: Promise<unknown> = Promise.resolve()

  constructor(options: SpillBufferOptions) {
    this.maxBytes = options.maxBytes
    this.memoryBytes = Math.min(options.memoryBytes ?? DEFAULT_SPILL_MEMORY_BYTES, options.maxBytes)
    this.tmpDir = options.tmpDir ?? tmpdir()
    this.memory = Buffer.alloc(Math.min(this.memoryBytes, 64 * 1024))
  }

  get byteLength(): number {
    return this.length
  }

  /** True once the body has gone to a temporary file. */
  get spilled(): boolean {
    return this.file !== null
  }

  /** Path of the temporary file while there is one (for tests and diagnostics). */
  get spillPath(): string | null {
    return this.file?.path ?? null
  }

  /** The first `n` bytes (or all there are) that are still in memory: enough to parse a push head. */
  prefix(n: number): Buffer {
    return this.memory.subarray(0, Math.min(n, this.length, this.memoryBytes))
  }

  append(chunk: Buffer): Promise<AppendResult> {
    return this.serial(() => this.appendNow(chunk))
  }

  /** Up to `length` bytes at `position`; fewer only at the end. */
  read(position: number, length: number): Promise<Buffer> {
    return this.serial(() => this.readNow(position, length))
  }

  /** The bytes from `offset` on, as a PackSource for pack.ts. */
  packSource(offset: number): PackSource {
    const byteLength = Math.max(0, this.length - offset)
    return {
      byteLength,
      read: (position, length) => this.read(offset + position, Math.min(length, byteLength - position)),
    }
  }

  /** Replay the body from `start`, e.g. upstream. Do not append while it is being read. */
  createReadStream(start = 0): Readable {
    if (this.file !== null) {
      if (this.length <= start) return Readable.from([])
      return createFileReadStream(this.file.path, { start, end: this.length - 1, highWaterMark: READ_STREAM_CHUNK })
    }
    const body = Buffer.from(this.memory.subarray(start, this.length))
    return Readable.from(chunks(body), { objectMode: false })
  }

  /** Remove the temporary file and directory, if any. Safe to call more than once. */
  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return
      this.closed = true
      this.memory = Buffer.alloc(0)
      const file = this.file
      this.file = null
      if (file === null) return
      await file.fh.close().catch(() => {})
      await rm(file.dir, { recursive: true, force: true })
    })
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private async appendNow(chunk: Buffer): Promise<AppendResult> {
    if (this.closed) return { kind: 'closed' }
    if (this.refused || this.length + chunk.length > this.maxBytes) {
      this.refused = true
      return { kind: 'too_large' }
    }
    if (this.file === null && this.length + chunk.length > this.memoryBytes) await this.spill()
    if (this.file !== null) {
      await writeAll(this.file.fh, chunk, this.length)
      // Keep the head in memory as well, so parsing it never needs the disk.
      if (this.length < this.memoryBytes) this.copyToMemory(chunk.subarray(0, this.memoryBytes - this.length))
    } else {
      this.copyToMemory(chunk)
    }
    this.length += chunk.length
    return { kind: 'ok' }
  }

  private copyToMemory(bytes: Buffer): void {
    const need = this.length + bytes.length
    if (need > this.memory.length) {
      const grown = Buffer.alloc(Math.min(this.memoryBytes, Math.max(need, this.memory.length * 2)))
      this.memory.copy(grown, 0, 0, this.length)
      this.memory = grown
    }
    bytes.copy(this.memory, this.length)
  }

  private async spill(): Promise<void> {
    const dir = await mkdtemp(join(this.tmpDir, 'portcullis-push-'))
    const path = join(dir, 'body')
    const fh = await open(path, 'wx+', 0o600)
    this.file = { dir, path, fh }
    await writeAll(fh, this.memory.subarray(0, this.length), 0)
  }

  private async readNow(position: number, length: number): Promise<Buffer> {
    if (this.closed) throw new Error('spill buffer is closed')
    const end = Math.min(this.length, position + Math.max(0, length))
    if (position >= end) return Buffer.alloc(0)
    if (this.file === null) return this.memory.subarray(position, end)
    const out = Buffer.alloc(end - position)
    let got = 0
    while (got < out.length) {
      const { bytesRead } = await this.file.fh.read(out, got, out.length - got, position + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return out.subarray(0, got)
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task)
    this.chain = run.catch(() => {})
    return run
  }
}

async function writeAll(fh: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done)
    done += bytesWritten
  }
}

function* chunks(body: Buffer): Generator<Buffer> {
  for (let off = 0; off < body.length; off += READ_STREAM_CHUNK) yield body.subarray(off, off + READ_STREAM_CHUNK)
}
