/**
 * The header of one pack entry (gitformat-pack(5)): type and inflated size,
 * then the delta base (a backwards distance for OFS_DELTA, an object id for
 * REF_DELTA). PURE; every read is bounds-checked.
 */

export const OBJ_COMMIT = 1
export const OBJ_TAG = 4
export const OBJ_OFS_DELTA = 6
export const OBJ_REF_DELTA = 7

export interface EntryHead {
  /** 1–4 (commit, tree, blob, tag), 6 (OFS_DELTA) or 7 (REF_DELTA). */
  readonly type: number
  /** Inflated size of the body (of the delta itself, for deltas). */
  readonly size: number
  /** Pack offset where the zlib stream starts. */
  readonly dataStart: number
  /** OFS_DELTA: pack offset the base should start at (not yet checked to be an object). */
  readonly baseOffset: number | null
  /** REF_DELTA: the base's id, lower-case hex. */
  readonly baseOid: string | null
}

export type EntryHeadResult =
  | { readonly ok: true; readonly entry: EntryHead }
  | { readonly ok: false; readonly problem: 'truncated' | 'malformed' | 'limit_exceeded'; readonly detail: string }

/** Parse the entry at pack offset `pos`, given `buf` = the bytes from `pos` on (64 are always enough). */
export function parseEntryHead(pos: number, buf: Buffer, oidRawLength: number): EntryHeadResult {
  let b = buf[0]
  if (b === undefined) return fail('truncated', 'object')
  const type = (b >> 4) & 7
  let size = b & 15
  let scale = 16
  let p = 1
  while (b & 0x80) {
    b = buf[p++]
    if (b === undefined) return fail('truncated', 'object')
    if (scale > 2 ** 49) return fail('limit_exceeded', 'object_size')
    size += (b & 0x7f) * scale
    scale *= 128
  }
  if (type === 0 || type === 5) return fail('malformed', 'object_type')
  if (type === OBJ_REF_DELTA) {
    const raw = buf.subarray(p, p + oidRawLength)
    if (raw.length < oidRawLength) return fail('truncated', 'object')
    return ok({ type, size, dataStart: pos + p + raw.length, baseOffset: null, baseOid: raw.toString('hex') })
  }
  if (type !== OBJ_OFS_DELTA) return ok({ type, size, dataStart: pos + p, baseOffset: null, baseOid: null })
  const rel = readOffsetVarint(buf, p)
  if (rel === null) return fail('malformed', 'delta_offset')
  if (rel.value <= 0 || rel.value > pos) return fail('malformed', 'delta_base')
  return ok({ type, size, dataStart: pos + rel.next, baseOffset: pos - rel.value, baseOid: null })
}

/** An OFS_DELTA base distance: big-endian base-128 with an added 1 per continuation (git's encoding). */
function readOffsetVarint(buf: Buffer, pos: number): { readonly value: number; readonly next: number } | null {
  let p = pos
  let c = buf[p++]
  if (c === undefined) return null
  let value = c & 0x7f
  while (c & 0x80) {
    c = buf[p++]
    if (c === undefined || value > 2 ** 45) return null
    value = (value + 1) * 128 + (c & 0x7f)
  }
  return { value, next: p }
}

function ok(entry: EntryHead): EntryHeadResult {
  return { ok: true, entry }
}

function fail(problem: 'truncated' | 'malformed' | 'limit_exceeded', detail: string): EntryHeadResult {
  return { ok: false, problem, detail }
}
