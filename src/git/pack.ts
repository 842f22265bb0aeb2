/**
 * Read a pushed packfile (gitformat-pack(5), versions 2 and 3) far enough to
 * know its commits: their ids and parents. Nothing else is kept.
 *
 *   "PACK" version(4) count(4)  count × object  checksum(sha1|sha256 of all before it)
 *   object = type+size varint [ofs-delta offset | ref-delta base id] zlib(body)
 *
 * One sequential pass walks every object (zlib tells where each body ends;
 * large bodies are inflated in chunks and dropped) and hashes the bytes for
 * the trailing checksum. Commits are kept whole, because a later commit may
 * be a delta against them; a delta's type is its base's type, so a delta on a
 * tree or blob is skipped like one. An OFS_DELTA's base always comes earlier;
 * a REF_DELTA's base may come later or not at all (a thin pack), so those are
 * noted (position only) and, once the walk is done, re-read and applied
 * whenever their base turns out to be a commit of the pack. Each object is
 * resolved at most once: time is linear in the pack.
 *
 * Never throws: every outcome, an unreadable pack included, is a value. Every
 * size is bounded by PackLimits.
 */

import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { hashObject, parseCommitParents } from './git-object.js'
import { oidRawLength, type ObjectFormat } from './object-format.js'
import { PackCursor, inflateBuffer, type InflateResult } from './pack-cursor.js'
import { applyDelta } from './pack-delta.js'
import { OBJ_COMMIT, OBJ_OFS_DELTA, OBJ_TAG, parseEntryHead, type EntryHead } from './pack-entry.js'
import type { PackSource } from './pack-source.js'

export interface PackLimits {
  /** Objects the header may announce. */
  readonly maxObjects: number
  /** Inflated bytes of all objects together: bounds CPU spent on a zip bomb. */
  readonly maxInflatedBytes: number
  /** Inflated size of one commit; a larger one is skipped (it cannot prove anything). */
  readonly maxCommitBytes: number
  /**
   * Commits held in memory together, whether inflated or rebuilt from deltas: also the budget of
   * hashing and copying one pack costs (a 10 KB pack of deltas can rebuild 62 MB of commits). Past it
   * the pack is `limit_exceeded` (`commit_bytes`): the push cannot be proven a fast forward.
   */
  readonly maxTotalCommitBytes: number
  /** Delta chain length for a commit; deeper ones are skipped. git's own maximum is 4095. */
  readonly maxDeltaDepth: number
  /** REF_DELTAs noted for after the walk; past this they are skipped. */
  readonly maxPendingDeltas: number
  /** Objects up to this size are inflated in one call; larger ones in chunks. */
  readonly inMemoryObjectBytes: number
}

export const DEFAULT_PACK_LIMITS: PackLimits = Object.freeze({
  maxObjects: 1_000_000,
  maxInflatedBytes: 1024 * 1024 * 1024,
  maxCommitBytes: 1024 * 1024,
  maxTotalCommitBytes: 32 * 1024 * 1024,
  maxDeltaDepth: 4095,
  maxPendingDeltas: 100_000,
  inMemoryObjectBytes: 1024 * 1024,
})

export type PackProblem =
  'truncated' | 'bad_signature' | 'unsupported_version' | 'malformed' | 'bad_checksum' | 'limit_exceeded' | 'read_error'

export interface PackStats {
  readonly objects: number
  readonly commits: number
  /** Commits rebuilt from a delta. */
  readonly deltaCommits: number
  /** Commit objects left out: too large, too deep a chain, or a header git would not parse. */
  readonly skippedCommits: number
  /** Deltas noted for later whose base never turned out to be a commit of this pack (thin-pack bases, trees, blobs). */
  readonly unresolvedDeltas: number
  readonly inflatedBytes: number
}

export interface PackCommits {
  readonly objectFormat: ObjectFormat
  readonly version: 2 | 3
  /** Commit id → parent ids, for every commit the pack holds that could be read. */
  readonly commits: ReadonlyMap<string, readonly string[]>
  readonly stats: PackStats
}

export type PackReadResult =
  | { readonly kind: 'pack'; readonly pack: PackCommits }
  | { readonly kind: 'unreadable'; readonly problem: PackProblem; readonly detail: string }

/** Kind of an object whose type is not known yet (a REF_DELTA, or a delta on one). */
const KIND_PENDING = 8
/** Kind of an object that is of no use: unknown type for good, or a skipped commit. */
const KIND_LOST = 9
const HEADER_BYTES = 12
/** Entries between two yields to the event loop. */
const YIELD_EVERY = 256
/**
 * Bytes produced (inflated, and commits rebuilt from deltas and hashed) between two yields, whatever
 * the count: objects that inflate big from little (a push of a thousand 1 MiB blobs of zeros is 1 MB on
 * the wire) and commit deltas that copy a big base (62 commits with a 1 MB message are a 10 KB pack)
 * would otherwise hold the loop, and every other agent's traffic, for seconds. A few milliseconds.
 */
const YIELD_EVERY_BYTES = 1024 * 1024

class Unreadable {
  constructor(
    readonly problem: PackProblem,
    readonly detail: string,
  ) {}
}

interface HeldCommit {
  readonly oid: string
  readonly content: Buffer
  readonly depth: number
}

interface Pending {
  readonly offset: number
  readonly dataStart: number
  readonly dataEnd: number
  readonly size: number
}

export async function readPack(
  source: PackSource,
  format: ObjectFormat,
  limits: PackLimits = DEFAULT_PACK_LIMITS,
): Promise<PackReadResult> {
  try {
    const walk = new PackWalk(source, format, limits)
    return { kind: 'pack', pack: await walk.run() }
  } catch (e) {
    if (e instanceof Unreadable) return { kind: 'unreadable', problem: e.problem, detail: e.detail }
    return { kind: 'unreadable', problem: 'read_error', detail: 'exception' }
  }
}

class PackWalk {
  private readonly cursor: PackCursor
  private readonly trailerLength: number
  /** Offsets of the objects read so far (ascending) and their kinds (1–4 object type, or PENDING/LOST). */
  private readonly offsets: number[] = []
  private readonly kinds: number[] = []
  private readonly held = new Map<number, HeldCommit>()
  private readonly commitOffsetByOid = new Map<string, number>()
  private readonly parents = new Map<string, readonly string[]>()
  private readonly pendingByOid = new Map<string, Pending[]>()
  private readonly pendingByOffset = new Map<number, Pending[]>()
  private pendingCount = 0
  private heldBytes = 0
  private inflated = 0
  /** inflated + heldBytes when the walk last yielded to the event loop. */
  private yieldedAt = 0
  private deltaCommits = 0
  private skippedCommits = 0

  constructor(
    private readonly source: PackSource,
    private readonly format: ObjectFormat,
    private readonly limits: PackLimits,
  ) {
    this.trailerLength = oidRawLength(format)
    this.cursor = new PackCursor(source, format, this.trailerLength)
  }

  async run(): Promise<PackCommits> {
    if (this.source.byteLength < HEADER_BYTES + this.trailerLength) throw new Unreadable('truncated', 'header')
    const header = await this.cursor.peek(0, HEADER_BYTES)
    if (header.subarray(0, 4).toString('latin1') !== 'PACK') throw new Unreadable('bad_signature', 'signature')
    const version = header.readUInt32BE(4)
    if (version !== 2 && version !== 3) throw new Unreadable('unsupported_version', String(version))
    const count = header.readUInt32BE(8)
    if (count > this.limits.maxObjects) throw new Unreadable('limit_exceeded', 'objects')
    let pos = HEADER_BYTES
    for (let i = 0; i < count; i++) {
      pos = await this.readEntry(pos)
      await this.yieldEvery(i)
    }
    await this.checkTrailer(pos)
    await this.resolvePending()
    return {
      objectFormat: this.format,
      version,
      commits: this.parents,
      stats: {
        objects: count,
        commits: this.parents.size,
        deltaCommits: this.deltaCommits,
        skippedCommits: this.skippedCommits,
        unresolvedDeltas: this.pendingCount,
        inflatedBytes: this.inflated,
      },
    }
  }

  /** Yield to the event loop after every YIELD_EVERY steps or YIELD_EVERY_BYTES produced, whichever comes first. */
  private async yieldEvery(step: number): Promise<void> {
    const produced = this.inflated + this.heldBytes
    if (step % YIELD_EVERY !== YIELD_EVERY - 1 && produced - this.yieldedAt < YIELD_EVERY_BYTES) return
    this.yieldedAt = produced
    await yieldToLoop()
  }

  private async checkTrailer(pos: number): Promise<void> {
    const hashEnd = this.source.byteLength - this.trailerLength
    if (pos > hashEnd) throw new Unreadable('truncated', 'trailer')
    if (pos < hashEnd) throw new Unreadable('malformed', 'trailing_data')
    const trailer = (await this.cursor.peek(pos, this.trailerLength)).subarray(0, this.trailerLength)
    if (!trailer.equals(this.cursor.digest())) throw new Unreadable('bad_checksum', 'trailer')
  }

  /** Read one object at `pos`; returns where the next one starts. */
  private async readEntry(pos: number): Promise<number> {
    const entry = this.readEntryHead(pos, await this.cursor.peek(pos, 64))
    if (entry.size > this.limits.maxInflatedBytes - this.inflated) throw new Unreadable('limit_exceeded', 'inflated')
    this.inflated += entry.size
    const baseKind = this.baseKindOf(entry)
    const keepLimit = entry.type === OBJ_COMMIT ? this.limits.maxCommitBytes : 2 * this.limits.maxCommitBytes
    const isCommitData = entry.type === OBJ_COMMIT || baseKind === OBJ_COMMIT
    if (isCommitData && entry.size <= keepLimit) {
      const { body, consumed } = inflated(await this.cursor.inflateWhole(entry.dataStart, entry.size))
      const held = entry.type === OBJ_COMMIT ? this.addCommit(pos, body, 0) : this.addDeltaCommit(pos, entry, body)
      this.record(pos, held ? OBJ_COMMIT : KIND_LOST)
      return entry.dataStart + consumed
    }
    if (isCommitData) this.skippedCommits++
    const { consumed } = inflated(
      entry.size <= this.limits.inMemoryObjectBytes
        ? await this.cursor.inflateWhole(entry.dataStart, entry.size)
        : await this.cursor.inflateDiscard(entry.dataStart, entry.size),
    )
    this.record(pos, isCommitData ? KIND_LOST : this.noteUnknown(pos, entry, consumed, baseKind))
    return entry.dataStart + consumed
  }

  /** The kind an object gets when it is not a commit we can read now. */
  private noteUnknown(pos: number, entry: EntryHead, consumed: number, baseKind: number): number {
    if (entry.type < OBJ_OFS_DELTA) return entry.type
    if (baseKind !== KIND_PENDING) return baseKind
    if (entry.size > 2 * this.limits.maxCommitBytes || this.pendingCount >= this.limits.maxPendingDeltas)
      return KIND_LOST
    const pending: Pending = {
      offset: pos,
      dataStart: entry.dataStart,
      dataEnd: entry.dataStart + consumed,
      size: entry.size,
    }
    if (entry.baseOid !== null) push(this.pendingByOid, entry.baseOid, pending)
    else push(this.pendingByOffset, entry.baseOffset!, pending)
    this.pendingCount++
    return KIND_PENDING
  }

  /** Object type (1–4) the entry will have, COMMIT included; PENDING or LOST when not known. */
  private baseKindOf(entry: EntryHead): number {
    if (entry.type <= OBJ_TAG) return entry.type
    if (entry.baseOid !== null) return this.commitOffsetByOid.has(entry.baseOid) ? OBJ_COMMIT : KIND_PENDING
    return this.kinds[this.indexOfOffset(entry.baseOffset!)]!
  }

  /** Rebuild a commit from `delta` on a held commit; false when it is skipped. */
  private addDeltaCommit(pos: number, entry: EntryHead, delta: Buffer): boolean {
    const baseOffset = entry.baseOid !== null ? this.commitOffsetByOid.get(entry.baseOid)! : entry.baseOffset!
    const base = this.held.get(baseOffset)!
    if (base.depth + 1 > this.limits.maxDeltaDepth) {
      this.skippedCommits++
      return false
    }
    const out = applyDelta(base.content, delta, this.limits.maxCommitBytes)
    if (!out.ok) {
      // git's index-pack would refuse the whole pack for a broken delta; a too-large result is only our limit.
      if (out.problem !== 'target_too_large') throw new Unreadable('malformed', 'commit_delta')
      this.skippedCommits++
      return false
    }
    this.deltaCommits++
    return this.addCommit(pos, out.target, base.depth + 1)
  }

  /** Hold a commit (it may be a delta base later) and note its parents if git could parse them. */
  private addCommit(pos: number, content: Buffer, depth: number): boolean {
    this.heldBytes += content.length
    if (this.heldBytes > this.limits.maxTotalCommitBytes) throw new Unreadable('limit_exceeded', 'commit_bytes')
    const oid = hashObject('commit', content, this.format)
    this.held.set(pos, { oid, content, depth })
    this.commitOffsetByOid.set(oid, pos)
    const parents = parseCommitParents(content, this.format)
    if (parents === null) this.skippedCommits++
    else this.parents.set(oid, parents)
    return true
  }

  /** After the walk: apply every noted delta whose base is (or becomes) a commit of the pack. */
  private async resolvePending(): Promise<void> {
    if (this.pendingCount === 0) return
    const queue = [...this.held.keys()]
    let work = 0
    for (let i = 0; i < queue.length; i++) {
      const offset = queue[i]!
      const { oid } = this.held.get(offset)!
      const waiting = [...(this.pendingByOffset.get(offset) ?? []), ...(this.pendingByOid.get(oid) ?? [])]
      this.pendingByOffset.delete(offset)
      this.pendingByOid.delete(oid)
      for (const p of waiting) {
        this.pendingCount--
        if (await this.resolveOne(p, offset)) queue.push(p.offset)
        await this.yieldEvery(work++)
      }
    }
  }

  private async resolveOne(p: Pending, baseOffset: number): Promise<boolean> {
    const base = this.held.get(baseOffset)!
    if (base.depth + 1 > this.limits.maxDeltaDepth) {
      this.skippedCommits++
      return false
    }
    const input = await this.source.read(p.dataStart, p.dataEnd - p.dataStart)
    const res = inflateBuffer(input, p.size)
    if (res === 'need_more' || !res.ok) throw new Unreadable('malformed', 'reread')
    const out = applyDelta(base.content, res.output!, this.limits.maxCommitBytes)
    if (!out.ok) {
      if (out.problem !== 'target_too_large') throw new Unreadable('malformed', 'commit_delta')
      this.skippedCommits++
      return false
    }
    this.deltaCommits++
    return this.addCommit(p.offset, out.target, base.depth + 1)
  }

  private readEntryHead(pos: number, buf: Buffer): EntryHead {
    const head = parseEntryHead(pos, buf, this.trailerLength)
    if (!head.ok) throw new Unreadable(head.problem, head.detail)
    const { baseOffset } = head.entry
    // An OFS_DELTA must name the start of an object already read.
    if (baseOffset !== null && (baseOffset < HEADER_BYTES || this.indexOfOffset(baseOffset) < 0)) {
      throw new Unreadable('malformed', 'delta_base')
    }
    return head.entry
  }

  private record(offset: number, kind: number): void {
    this.offsets.push(offset)
    this.kinds.push(kind)
  }

  private indexOfOffset(offset: number): number {
    let lo = 0
    let hi = this.offsets.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const v = this.offsets[mid]!
      if (v === offset) return mid
      if (v < offset) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }
}

function inflated(res: InflateResult): { readonly body: Buffer; readonly consumed: number } {
  if (!res.ok) {
    const problem =
      res.problem === 'truncated' ? 'truncated' : res.problem === 'read_error' ? 'read_error' : 'malformed'
    throw new Unreadable(problem, `zlib_${res.problem}`)
  }
  return { body: res.output ?? Buffer.alloc(0), consumed: res.consumed }
}

function push<K>(map: Map<K, Pending[]>, key: K, value: Pending): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}
