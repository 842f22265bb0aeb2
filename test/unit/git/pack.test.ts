import { deflateSync } from 'node:zlib'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { isFastForward } from '../../../src/git/fast-forward.js'
import type { ObjectFormat } from '../../../src/git/object-format.js'
import { DEFAULT_PACK_LIMITS, readPack, type PackLimits, type PackReadResult } from '../../../src/git/pack.js'
import { createBufferSource } from '../../../src/git/pack-source.js'
import { SpillBuffer } from '../../../src/git/spill-buffer.js'
import { longText, makeRepo, rewritePack, type Repo } from './git-fixtures.js'

/**
 * Packs written by real git (pack-objects, as `git push` runs it), read by
 * pack.ts; fast-forward answers checked against what git says about the
 * same commits.
 */

const read = (pack: Buffer, format: ObjectFormat = 'sha1', limits?: Partial<PackLimits>) =>
  readPack(createBufferSource(pack), format, { ...DEFAULT_PACK_LIMITS, ...limits })

function commitsOf(r: PackReadResult) {
  if (r.kind !== 'pack') throw new Error(`unreadable: ${r.problem} ${r.detail}`)
  return r.pack
}

/** A repo with `n` commits on main whose messages and files deltify well. */
function history(dir: string, n: number, format: ObjectFormat = 'sha1'): { repo: Repo; ids: string[] } {
  const repo = makeRepo(dir, format)
  const ids: string[] = []
  for (let i = 0; i < n; i++) ids.push(repo.commit(`commit ${i}\n\n${longText(i, 60)}`, { 'a.txt': longText(i) }))
  return { repo, ids }
}

/** `work()`'s result, and how many times other work (a setImmediate) ran on the event loop meanwhile. */
async function countingTurns<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0
  let reading = true
  const count = (): void => {
    turns++
    if (reading) setImmediate(count)
  }
  setImmediate(count)
  const result = await work()
  reading = false
  return { result, turns }
}

t.test('fast-forward by one commit is proven', async (t) => {
  const { repo, ids } = history(t.testdir(), 2)
  const r = await read(repo.pack([ids[1]!, `^${ids[0]}`]))
  t.matchOnly(isFastForward(r, ids[0]!, ids[1]!), { kind: 'fast_forward', walked: 1 })
})

t.test('fast-forward by several commits is proven, and the pack holds exactly git’s commits', async (t) => {
  const { repo, ids } = history(t.testdir(), 7)
  const r = await read(repo.pack([ids[6]!, `^${ids[1]}`]))
  t.matchOnly(isFastForward(r, ids[1]!, ids[6]!), { kind: 'fast_forward', walked: 5 })
  const pack = commitsOf(r)
  t.same([...pack.commits.keys()].sort(), ids.slice(2).sort())
  t.same(pack.commits.get(ids[6]!), [ids[5]])
  t.equal(pack.stats.objects, Number(repo.git(['rev-list', '--objects', '--count', ids[6]!, `^${ids[1]}`])))
})

t.test('a merge is a fast-forward of either parent', async (t) => {
  const repo = makeRepo(t.testdir())
  const base = repo.commit('base\n', { 'a.txt': 'a\n' })
  repo.git(['checkout', '-q', '-b', 'side'])
  const side = repo.commit('side\n', { 'b.txt': 'b\n' })
  repo.git(['checkout', '-q', 'main'])
  const main = repo.commit('main\n', { 'c.txt': 'c\n' })
  repo.git(['merge', '-q', '--no-edit', 'side'])
  const merge = repo.git(['rev-parse', 'HEAD'])
  const r = await read(repo.pack([merge, `^${base}`]))
  t.equal(isFastForward(r, main, merge).kind, 'fast_forward')
  t.equal(isFastForward(r, side, merge).kind, 'fast_forward')
  t.equal(isFastForward(r, base, merge).kind, 'fast_forward')
})

t.test('an amended commit does not reach the old tip: not proven', async (t) => {
  const { repo, ids } = history(t.testdir(), 2)
  repo.git(['commit', '-q', '--amend', '-m', 'amended'])
  const amended = repo.git(['rev-parse', 'HEAD'])
  const r = await read(repo.pack([amended, `^${ids[0]}`]))
  // Its parent is on the server, outside the pack: whether that leads to the old tip cannot be seen.
  t.matchOnly(isFastForward(r, ids[1]!, amended), { kind: 'not_proven', why: 'left_pack' })
  // A history wholly in the pack (a new root) that never meets the old tip is a rewrite.
  repo.git(['checkout', '-q', '--orphan', 'fresh'])
  const root = repo.commit('fresh root\n', { 'f.txt': 'f\n' })
  const rooted = await read(repo.pack([root]))
  t.matchOnly(isFastForward(rooted, ids[1]!, root), { kind: 'not_proven', why: 'old_not_reached' })
})

t.test('a fast forward onto commits the server got from another push leaves the pack: not proven', async (t) => {
  // O on one branch, P (child of O) pushed to another, then C (child of P) onto the first: the pack holds C.
  const { repo, ids } = history(t.testdir(), 3)
  const r = await read(repo.pack([ids[2]!, `^${ids[1]}`, `^${ids[0]}`]))
  t.matchOnly(isFastForward(r, ids[0]!, ids[2]!), { kind: 'not_proven', why: 'left_pack' })
})

t.test('going back to an ancestor is not proven (the pack has nothing)', async (t) => {
  const { repo, ids } = history(t.testdir(), 3)
  const r = await read(repo.pack([ids[0]!, `^${ids[2]}`]))
  t.equal(commitsOf(r).stats.objects, 0)
  t.matchOnly(isFastForward(r, ids[2]!, ids[0]!), { kind: 'not_proven', why: 'new_not_in_pack' })
})

t.test('an empty pack (new tip already on the server) is not proven', async (t) => {
  const { repo, ids } = history(t.testdir(), 2)
  const empty = repo.pack([])
  t.equal(empty.length, 32)
  const r = await read(empty)
  t.equal(commitsOf(r).commits.size, 0)
  t.matchOnly(isFastForward(r, ids[0]!, ids[1]!), { kind: 'not_proven', why: 'new_not_in_pack' })
})

t.test('the same id, and creations or deletions, are answered without the pack', async (t) => {
  const r = await read(Buffer.alloc(0))
  const a = 'a'.repeat(40)
  const z = '0'.repeat(40)
  t.matchOnly(isFastForward(r, a, a), { kind: 'fast_forward', walked: 0 })
  t.matchOnly(isFastForward(r, z, a), { kind: 'not_proven', why: 'not_an_update' })
  t.matchOnly(isFastForward(r, a, z), { kind: 'not_proven', why: 'not_an_update' })
  t.matchOnly(isFastForward(r, a, 'b'.repeat(40)), { kind: 'not_proven', why: 'pack_unreadable', detail: 'truncated' })
})

t.test('commits stored as OFS_DELTA are rebuilt and prove the fast-forward', async (t) => {
  const { repo, ids } = history(t.testdir(), 8)
  const pack = repo.pack([ids[7]!, `^${ids[0]}`])
  const deltaCommits = repo.entries(pack).filter((e) => e.type === 'commit' && e.depth > 0)
  t.ok(deltaCommits.length > 0, 'git really stored some commits as deltas')
  const got = commitsOf(await read(pack))
  t.equal(got.stats.deltaCommits, deltaCommits.length)
  t.equal(got.commits.size, 7)
  t.equal(isFastForward(await read(pack), ids[0]!, ids[7]!).kind, 'fast_forward')
  // Every rebuilt commit has the parent git says it has.
  for (let i = 1; i < 8; i++) t.same(got.commits.get(ids[i]!), [ids[i - 1]])
})

t.test('commits stored as REF_DELTA are rebuilt, even when the base comes after the delta', async (t) => {
  const { repo, ids } = history(t.testdir(), 8)
  const pack = repo.pack([ids[7]!, `^${ids[0]}`], { refDelta: true })
  const entries = repo.entries(pack)
  const deltas = entries.filter((e) => e.type === 'commit' && e.base !== null)
  t.ok(deltas.length > 0, 'git stored commits as REF_DELTA')
  t.equal(isFastForward(await read(pack), ids[0]!, ids[7]!).kind, 'fast_forward')
  // Move every delta base to the end: a REF_DELTA may name a base that is further on.
  const bases = new Set(deltas.map((d) => d.base))
  const reordered = rewritePack(
    pack,
    [...entries.filter((e) => !bases.has(e.oid)), ...entries.filter((e) => bases.has(e.oid))],
    'sha1',
  )
  const r = await read(reordered)
  t.equal(commitsOf(r).stats.deltaCommits, deltas.length)
  t.equal(commitsOf(r).commits.size, 7)
  t.equal(isFastForward(r, ids[0]!, ids[7]!).kind, 'fast_forward')
})

t.test('a thin pack (blob deltas on bases the server has) still proves a fast-forward', async (t) => {
  const repo = makeRepo(t.testdir())
  const big = randomBytes(64 * 1024).toString('base64')
  const old = repo.commit('one\n', { 'big.txt': big })
  const tip = repo.commit('two\n', { 'big.txt': big + 'appended line\n' })
  const thin = repo.pack([tip, `^${old}`], { thin: true })
  const r = await read(thin)
  t.ok(commitsOf(r).stats.unresolvedDeltas > 0, 'the pack really is thin')
  t.matchOnly(isFastForward(r, old, tip), { kind: 'fast_forward', walked: 1 })
})

t.test('a pack whose commit is a delta on a commit it does not carry cannot prove anything', async (t) => {
  const { repo, ids } = history(t.testdir(), 8)
  const pack = repo.pack([ids[7]!, `^${ids[0]}`], { refDelta: true })
  const entries = repo.entries(pack)
  const delta = entries.find((e) => e.type === 'commit' && e.base !== null)!
  const stripped = rewritePack(
    pack,
    entries.filter((e) => e.oid !== delta.base),
    'sha1',
  )
  const r = await read(stripped)
  t.ok(commitsOf(r).stats.unresolvedDeltas > 0)
  t.notOk(commitsOf(r).commits.has(delta.oid), 'the delta commit could not be rebuilt')
  t.matchOnly(isFastForward(r, ids[0]!, delta.oid), { kind: 'not_proven', why: 'new_not_in_pack' })
})

t.test('a pack read from a spilled body, with large blobs inflated in chunks', async (t) => {
  const dir = t.testdir()
  const repo = makeRepo(join(dir, 'r'))
  const old = repo.commit('one\n', { 'a.txt': 'a\n' })
  const tip = repo.commit('two\n', { 'big.bin': randomBytes(3 * 1024 * 1024), 'b.bin': randomBytes(200 * 1024) })
  const pack = repo.pack([tip, `^${old}`])
  const spill = new SpillBuffer({ maxBytes: 16 * 1024 * 1024, memoryBytes: 256 * 1024, tmpDir: dir })
  t.teardown(() => spill.close())
  const prefix = Buffer.from('0000')
  for (const chunk of [prefix, pack.subarray(0, 100_000), pack.subarray(100_000)]) await spill.append(chunk)
  t.ok(spill.spilled)
  for (const inMemoryObjectBytes of [DEFAULT_PACK_LIMITS.inMemoryObjectBytes, 1024]) {
    const r = await readPack(spill.packSource(prefix.length), 'sha1', { ...DEFAULT_PACK_LIMITS, inMemoryObjectBytes })
    t.matchOnly(
      isFastForward(r, old, tip),
      { kind: 'fast_forward', walked: 1 },
      `inMemoryObjectBytes ${inMemoryObjectBytes}`,
    )
    t.ok(commitsOf(r).stats.inflatedBytes > 3 * 1024 * 1024)
  }
})

t.test('sha256 repositories: ids, delta commits and the sha256 trailer', async (t) => {
  const { repo, ids } = history(t.testdir(), 6, 'sha256')
  t.equal(ids[0]!.length, 64)
  const pack = repo.pack([ids[5]!, `^${ids[0]}`])
  const r = await read(pack, 'sha256')
  t.ok(commitsOf(r).stats.deltaCommits > 0)
  t.same([...commitsOf(r).commits.keys()].sort(), ids.slice(1).sort())
  t.equal(isFastForward(r, ids[0]!, ids[5]!).kind, 'fast_forward')
  repo.git(['commit', '-q', '--amend', '-m', 'x'])
  const amended = repo.git(['rev-parse', 'HEAD'])
  const r2 = await read(repo.pack([amended, `^${ids[0]}`]), 'sha256')
  t.matchOnly(isFastForward(r2, ids[5]!, amended), { kind: 'not_proven', why: 'left_pack' })
  // Read as the wrong format, the trailer is the wrong length.
  t.match(await read(pack, 'sha1'), { kind: 'unreadable' })
})

t.test('unreadable packs are typed results, never throws', async (t) => {
  const { repo, ids } = history(t.testdir(), 3)
  const pack = repo.pack([ids[2]!, `^${ids[0]}`])
  const flipped = Buffer.from(pack)
  flipped[flipped.length - 1]! ^= 1
  const badVersion = Buffer.from(pack)
  badVersion.writeUInt32BE(4, 4)
  const cases: [string, Buffer, string][] = [
    ['no bytes at all', Buffer.alloc(0), 'truncated'],
    ['a bad trailing checksum', flipped, 'bad_checksum'],
    ['cut in the middle', pack.subarray(0, Math.floor(pack.length / 2)), 'truncated'],
    ['cut before the trailer', pack.subarray(0, pack.length - 20), 'truncated'],
    ['trailing bytes after the trailer', Buffer.concat([pack, Buffer.from('x')]), 'malformed'],
    ['not a pack', Buffer.concat([Buffer.from('KCAP'), pack.subarray(4)]), 'bad_signature'],
    ['version 4', badVersion, 'unsupported_version'],
  ]
  for (const [name, bytes, problem] of cases) {
    const r = await read(bytes)
    t.match(r, { kind: 'unreadable', problem }, name)
    t.match(isFastForward(r, ids[0]!, ids[2]!), { kind: 'not_proven', why: 'pack_unreadable' }, name)
  }
  t.matchOnly(
    await readPack({ byteLength: pack.length, read: () => Promise.reject(new Error('EIO')) }, 'sha1'),
    { kind: 'unreadable', problem: 'read_error', detail: 'exception' },
    'a source that fails to read',
  )
})

t.test('limits: every bound gives a typed answer', async (t) => {
  const { repo, ids } = history(t.testdir(), 8)
  const pack = repo.pack([ids[7]!, `^${ids[0]}`])
  t.match(await read(pack, 'sha1', { maxObjects: 3 }), {
    kind: 'unreadable',
    problem: 'limit_exceeded',
    detail: 'objects',
  })
  t.match(await read(pack, 'sha1', { maxInflatedBytes: 1000 }), {
    kind: 'unreadable',
    problem: 'limit_exceeded',
    detail: 'inflated',
  })
  t.match(await read(pack, 'sha1', { maxTotalCommitBytes: 2000 }), {
    kind: 'unreadable',
    problem: 'limit_exceeded',
    detail: 'commit_bytes',
  })
  // A commit too big to hold is skipped: it can no longer prove anything.
  const small = commitsOf(await read(pack, 'sha1', { maxCommitBytes: 100 }))
  t.equal(small.commits.size, 0)
  t.ok(small.stats.skippedCommits > 0)
  // Delta chains deeper than allowed are skipped; the full commits they hang from remain.
  const shallow = commitsOf(await read(pack, 'sha1', { maxDeltaDepth: 0 }))
  t.equal(shallow.stats.deltaCommits, 0)
  t.ok(shallow.stats.skippedCommits > 0)
  t.ok(shallow.commits.size > 0 && shallow.commits.size < 7)
  t.not(isFastForward({ kind: 'pack', pack: shallow }, ids[0]!, ids[7]!).kind, 'fast_forward')
})

t.test('limits: REF_DELTAs past maxPendingDeltas are not resolved', async (t) => {
  const { repo, ids } = history(t.testdir(), 6)
  const pack = repo.pack([ids[5]!, `^${ids[0]}`], { refDelta: true })
  const entries = repo.entries(pack)
  const bases = new Set(entries.filter((e) => e.base !== null).map((e) => e.base))
  const reordered = rewritePack(
    pack,
    [...entries.filter((e) => !bases.has(e.oid)), ...entries.filter((e) => bases.has(e.oid))],
    'sha1',
  )
  const r = commitsOf(await read(reordered, 'sha1', { maxPendingDeltas: 0 }))
  t.equal(r.stats.deltaCommits, 0)
  t.ok(r.commits.size < 5)
})

t.test('a pack that inflates big from little lets the event loop run while it is read', async (t) => {
  // 48 blobs of 1 MiB of zeros: 48 MiB to inflate from ~50 KiB, fewer entries than one yield per count.
  const blobs = 48
  const size = 1024 * 1024
  const parts: Buffer[] = [Buffer.from('PACK\0\0\0\x02', 'latin1'), Buffer.alloc(4)]
  parts[1]?.writeUInt32BE(blobs)
  for (let i = 0; i < blobs; i++) {
    const header = [0x80 | (3 << 4) | (size & 15)]
    for (let rest = size >> 4; rest > 0; rest >>= 7) header.push((rest > 0x7f ? 0x80 : 0) | (rest & 0x7f))
    const body = Buffer.alloc(size)
    body.writeUInt32BE(i, size - 4)
    parts.push(Buffer.from(header), deflateSync(body))
  }
  const withoutSum = Buffer.concat(parts)
  const pack = Buffer.concat([withoutSum, createHash('sha1').update(withoutSum).digest()])
  const { result, turns } = await countingTurns(() => readPack(createBufferSource(pack), 'sha1', DEFAULT_PACK_LIMITS))
  t.equal(result.kind, 'pack')
  if (result.kind === 'pack') t.equal(result.pack.stats.inflatedBytes, blobs * size)
  t.ok(turns >= 12, `other work ran ${turns} times while ${blobs} MiB were inflated`)
})

t.test('commits rebuilt big from small deltas let the event loop run, within a budget of commit bytes', async (t) => {
  // 16 commits with a 1 MB message, each a delta on the next: ~3 KB of pack that rebuilds 16 MB of commits.
  const repo = makeRepo(t.testdir())
  const base = repo.commit('base\n', {})
  let tip = base
  for (let i = 0; i < 16; i++) tip = repo.commit(`x${i}\n\n${'a'.repeat(1_000_000)}\n`, {})
  const pack = repo.pack([tip, `^${base}`], { refDelta: true })
  t.ok(pack.length < 64 * 1024, `${pack.length} bytes of pack`)
  const { result, turns } = await countingTurns(() => read(pack))
  t.ok(commitsOf(result).stats.deltaCommits >= 14)
  t.equal(isFastForward(result, base, tip).kind, 'fast_forward')
  t.ok(turns >= 6, `other work ran ${turns} times while 16 MB of commits were rebuilt`)
  t.match(await read(pack, 'sha1', { maxTotalCommitBytes: 8 * 1024 * 1024 }), {
    kind: 'unreadable',
    problem: 'limit_exceeded',
    detail: 'commit_bytes',
  })
})
