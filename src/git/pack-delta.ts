/**
 * Git's delta format (gitformat-pack(5), "Deltified representation"). PURE.
 *
 *   delta = size(base) size(target) *instruction
 *   copy   = 1ooossss [offset bytes 0-3] [size bytes 0-2]   (size 0 means 0x10000)
 *   insert = 0nnnnnnn n bytes                              (n > 0; 0 is reserved)
 *
 * Every length is checked before use and the target size is bounded by the
 * caller, so a hostile delta costs at most `maxTargetBytes` of memory and one
 * pass over the delta.
 */

export type DeltaResult =
  | { readonly ok: true; readonly target: Buffer }
  | { readonly ok: false; readonly problem: 'malformed' | 'base_size_mismatch' | 'target_too_large' }

/** Read a little-endian base-128 size at `pos`; null if it runs past the end or past 2^53. */
export function readSizeVarint(buf: Buffer, pos: number): { readonly value: number; readonly next: number } | null {
  let value = 0
  let scale = 1
  for (let i = pos; i < buf.length; i++) {
    const b = buf[i]!
    value += (b & 0x7f) * scale
    if ((b & 0x80) === 0) return value <= Number.MAX_SAFE_INTEGER ? { value, next: i + 1 } : null
    scale *= 128
    if (scale > 2 ** 56) return null
  }
  return null
}

export function applyDelta(base: Buffer, delta: Buffer, maxTargetBytes: number): DeltaResult {
  const src = readSizeVarint(delta, 0)
  if (src === null) return { ok: false, problem: 'malformed' }
  if (src.value !== base.length) return { ok: false, problem: 'base_size_mismatch' }
  const tgt = readSizeVarint(delta, src.next)
  if (tgt === null) return { ok: false, problem: 'malformed' }
  if (tgt.value > maxTargetBytes) return { ok: false, problem: 'target_too_large' }
  const out = Buffer.allocUnsafe(tgt.value)
  let o = 0
  let p = tgt.next
  while (p < delta.length) {
    const cmd = delta[p++]!
    if (cmd & 0x80) {
      let offset = 0
      let size = 0
      for (let bit = 0; bit < 4; bit++) {
        if (cmd & (1 << bit)) {
          if (p >= delta.length) return { ok: false, problem: 'malformed' }
          offset += delta[p++]! * 2 ** (8 * bit)
        }
      }
      for (let bit = 0; bit < 3; bit++) {
        if (cmd & (0x10 << bit)) {
          if (p >= delta.length) return { ok: false, problem: 'malformed' }
          size += delta[p++]! * 2 ** (8 * bit)
        }
      }
      if (size === 0) size = 0x10000
      if (offset + size > base.length || o + size > out.length) return { ok: false, problem: 'malformed' }
      base.copy(out, o, offset, offset + size)
      o += size
    } else if (cmd !== 0) {
      if (p + cmd > delta.length || o + cmd > out.length) return { ok: false, problem: 'malformed' }
      delta.copy(out, o, p, p + cmd)
      o += cmd
      p += cmd
    } else {
      return { ok: false, problem: 'malformed' }
    }
  }
  return o === out.length ? { ok: true, target: out } : { ok: false, problem: 'malformed' }
}
