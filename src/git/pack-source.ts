/**
 * Where a pack's bytes come from: memory, or a request body spilled to disk
 * (spill-buffer.ts). The reader asks for bounded ranges, so a pack never has
 * to be in memory whole.
 */

export interface PackSource {
  /** Total bytes, trailing checksum included. */
  readonly byteLength: number
  /** Up to `length` bytes from `position`; fewer only at the end. May reject (I/O error). */
  read(position: number, length: number): Promise<Buffer>
}

export function createBufferSource(buf: Buffer): PackSource {
  return {
    byteLength: buf.length,
    read: (position, length) => Promise.resolve(buf.subarray(position, Math.min(buf.length, position + length))),
  }
}
