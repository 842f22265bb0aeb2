/**
 * Copies, for writes that complete later, of bytes that are only lent (the upstream client's read
 * buffer, reused read after read: http1-client.ts). Taken one after another from one buffer and
 * given back in the order they were taken, as writes to one socket complete in order: a download
 * costs one buffer, not one ArrayBuffer per read (V8 counts every ArrayBuffer against its heap
 * limits, and 16 KiB ones by the thousand made it mark and compact the whole heap every ~30 MB).
 *
 *   const copy = ring.copy(view)       // null: no room until earlier copies are given back
 *   socket.write(copy, ring.release)   // each completed write gives back the oldest copy
 *
 * Bytes are never handed out again while a copy of them is out. Every copy is given back once, by
 * the write that took it (failed writes call back too); a `release` with no copy out is ignored.
 */
export class CopyRing {
  private readonly buf: Buffer
  /** Copies not yet given back, oldest first, as [offset, length] pairs. */
  private readonly out: number[] = []
  /** Where the newest copy ends: the next one goes here when it fits. */
  private end = 0

  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafeSlow(bytes)
  }

  /** A copy of `bytes` in the ring, or null when it has no room for them now (or they are empty). */
  copy(bytes: Uint8Array): Buffer | null {
    const n = bytes.length
    const at = n === 0 ? -1 : this.placeFor(n)
    if (at < 0) return null
    this.buf.set(bytes, at)
    this.out.push(at, n)
    this.end = at + n
    return this.buf.subarray(at, at + n)
  }

  /** Gives back the oldest copy (its write is done). Shaped as a write callback; the error is irrelevant. */
  readonly release = (): void => {
    if (this.out.length === 0) return
    this.out.splice(0, 2)
    if (this.out.length === 0) this.end = 0
  }

  /** Copies out now. */
  get inUse(): number {
    return this.out.length / 2
  }

  /** Where `n` bytes fit after the newest copy without touching any copy still out, or -1. */
  private placeFor(n: number): number {
    if (n > this.buf.length) return -1
    if (this.out.length === 0) return 0
    const oldest = this.out[0] as number
    // Copies out lie from `oldest` to `end`, or (wrapped) from `oldest` to the buffer's end and from 0 to `end`.
    if (this.end > oldest) {
      if (this.end + n <= this.buf.length) return this.end
      return n <= oldest ? 0 : -1
    }
    return this.end + n <= oldest ? this.end : -1
  }
}
