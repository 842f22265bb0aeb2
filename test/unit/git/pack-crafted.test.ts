import { createHash } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import t from 'tap'
import { isFastForward } from '../../../src/git/fast-forward.js'
import { hashObject, parseCommitParents } from '../../../src/git/git-object.js'
import { DEFAULT_PACK_LIMITS, readPack } from '../../../src/git/pack.js'
import { applyDelta, readSizeVarint } from '../../../src/git/pack-delta.js'
import { createBufferSource } from '../../../src/git/pack-source.js'
import { commitBody, craftPack, insertDelta, sizeVarint } from './git-fixtures.js'

/** Packs built by hand for shapes git does not write but a hostile client could. */

const P1 = '1'.repeat(40)
const read = (pack: Buffer) => readPack(createBufferSource(pack), 'sha1')
const oid = (body: Buffer) => hashObject('commit', body, 'sha1')

t.test('object ids are git’s: sha1 and sha256 of "<type> <size>\\0" + body', async (t) => {
  const body = Buffer.from('hello\n')
  t.equal(hashObject('blob', body, 'sha1'), 'ce013625030ba8dba906f756967f9e9ca394464a') // git hash-object
  t.equal(hashObject('blob', body, 'sha256'), createHash('sha256').update('blob 6\0hello\n').digest('hex'))
})

t.test('parents: a tree line, then consecutive parent lines, as git reads them', async (t) => {
  const T = `tree ${'4'.repeat(40)}\n`
  const cases: [string, string, string[] | null][] = [
    ['root commit', `${T}author x\n\nmsg\n`, []],
    ['two parents', `${T}parent ${P1}\nparent ${'2'.repeat(40)}\nauthor x\n`, [P1, '2'.repeat(40)]],
    ['upper-case parent is folded', `${T}parent ${'A'.repeat(40)}\nauthor x\n`, ['a'.repeat(40)]],
    ['parent after author does not count', `${T}author x\nparent ${P1}\n`, []],
    ['no tree line', `parent ${P1}\nauthor x\n`, null],
    ['bad tree id', `tree ${'z'.repeat(40)}\nauthor x\n`, null],
    ['tree line only (git: bogus)', T, null],
    ['bad parent id', `${T}parent ${'z'.repeat(40)}\nauthor x\n`, null],
    ['parent line last (git: bad parents)', `${T}parent ${P1}\n`, null],
    ['parent line too long', `${T}parent ${P1}0\nauthor x\n`, null],
  ]
  for (const [name, text, want] of cases) t.same(parseCommitParents(Buffer.from(text), 'sha1'), want, name)
})

t.test('size varints: little-endian base 128, bounded', async (t) => {
  t.matchOnly(readSizeVarint(Buffer.from([0x05]), 0), { value: 5, next: 1 })
  t.matchOnly(readSizeVarint(Buffer.from([0x80, 0x01]), 0), { value: 128, next: 2 })
  t.equal(readSizeVarint(Buffer.from([0x80]), 0), null, 'runs off the end')
  t.equal(readSizeVarint(Buffer.alloc(12, 0xff), 0), null, 'too large')
  t.equal(readSizeVarint(sizeVarint(1234567), 0)?.value, 1234567)
})

t.test('applyDelta: copy and insert instructions', async (t) => {
  const base = Buffer.from('0123456789')
  const delta = Buffer.concat([
    sizeVarint(10),
    sizeVarint(7),
    Buffer.from([0x91, 2, 3, 2]),
    Buffer.from('ab'),
    Buffer.from([0x80 | 0x10, 2]),
  ])
  t.matchOnly(applyDelta(base, delta, 100), { ok: true, target: Buffer.from('234ab01') })
})

t.test('applyDelta: a copy of size 0 means 0x10000', async (t) => {
  const base = Buffer.alloc(0x10000, 7)
  const delta = Buffer.concat([sizeVarint(0x10000), sizeVarint(0x10000), Buffer.from([0x80])])
  const r = applyDelta(base, delta, 0x10000)
  t.equal(r.ok && r.target.length, 0x10000)
})

t.test('applyDelta: every malformed delta is refused', async (t) => {
  const base = Buffer.from('0123456789')
  const h = (tgt: number) => Buffer.concat([sizeVarint(10), sizeVarint(tgt)])
  const cases: [string, Buffer, number, string][] = [
    ['empty', Buffer.alloc(0), 100, 'malformed'],
    ['no target size', sizeVarint(10), 100, 'malformed'],
    [
      'base size mismatch',
      Buffer.concat([sizeVarint(9), sizeVarint(1), Buffer.from([1, 0x41])]),
      100,
      'base_size_mismatch',
    ],
    ['target too large', h(1000), 100, 'target_too_large'],
    ['copy past the base', Buffer.concat([h(5), Buffer.from([0x91, 8, 5])]), 100, 'malformed'],
    ['copy past the target', Buffer.concat([h(2), Buffer.from([0x91, 0, 5])]), 100, 'malformed'],
    ['copy missing its bytes', Buffer.concat([h(2), Buffer.from([0x91])]), 100, 'malformed'],
    ['insert past the delta', Buffer.concat([h(5), Buffer.from([5, 0x41])]), 100, 'malformed'],
    ['insert past the target', Buffer.concat([h(1), Buffer.from([2, 0x41, 0x42])]), 100, 'malformed'],
    ['reserved instruction 0', Buffer.concat([h(1), Buffer.from([0])]), 100, 'malformed'],
    ['target shorter than declared', Buffer.concat([h(3), Buffer.from([1, 0x41])]), 100, 'malformed'],
  ]
  for (const [name, delta, max, problem] of cases)
    t.matchOnly(applyDelta(base, delta, max), { ok: false, problem }, name)
})

t.test('an OFS_DELTA chain and a REF_DELTA that precedes its base are all rebuilt', async (t) => {
  const c1 = commitBody('sha1', [], 'one')
  const c2 = commitBody('sha1', [oid(c1)], 'two')
  const c3 = commitBody('sha1', [oid(c2)], 'three')
  const pack = craftPack('sha1', [
    { refDeltaOf: oid(c1), delta: insertDelta(c1.length, c2) }, // base comes later
    { ofsDeltaOf: 0, delta: insertDelta(c2.length, c3) }, // a delta on that pending delta
    { type: 1, body: c1 },
  ])
  const r = await read(pack)
  t.match(r, { kind: 'pack', pack: { stats: { commits: 3, deltaCommits: 2, unresolvedDeltas: 0 } } })
  t.matchOnly(isFastForward(r, oid(c1), oid(c3)), { kind: 'fast_forward', walked: 2 })
})

t.test('a delta on a blob is a blob, however commit-like its bytes', async (t) => {
  const blob = Buffer.from('just a blob\n')
  const fake = commitBody('sha1', [P1], 'looks like a commit')
  const pack = craftPack('sha1', [
    { type: 3, body: blob },
    { ofsDeltaOf: 0, delta: insertDelta(blob.length, fake) },
    { refDeltaOf: hashObject('blob', blob, 'sha1'), delta: insertDelta(blob.length, fake) },
  ])
  const r = await read(pack)
  t.match(r, { kind: 'pack', pack: { stats: { commits: 0 } } })
  t.matchOnly(isFastForward(r, P1, oid(fake)), { kind: 'not_proven', why: 'new_not_in_pack' })
})

t.test('a commit that git would not parse is held but proves nothing', async (t) => {
  const bogus = Buffer.from(`parent ${P1}\ntree ${'4'.repeat(40)}\n\nmsg\n`)
  const r = await read(craftPack('sha1', [{ type: 1, body: bogus }]))
  t.match(r, { kind: 'pack', pack: { stats: { commits: 0, skippedCommits: 1 } } })
})

t.test('structural faults are malformed', async (t) => {
  const c1 = commitBody('sha1', [], 'one')
  const good = craftPack('sha1', [
    { type: 1, body: c1 },
    { ofsDeltaOf: 0, delta: insertDelta(c1.length, c1) },
  ])
  const typeFive = craftPack('sha1', [{ type: 1, body: c1 }])
  typeFive[12] = (typeFive[12]! & 0x8f) | 0x50
  const wrongSize = craftPack('sha1', [{ type: 3, body: Buffer.from('abc'), declaredSize: 4 }])
  const brokenDelta = craftPack('sha1', [
    { type: 1, body: c1 },
    { ofsDeltaOf: 0, delta: Buffer.concat([sizeVarint(c1.length), sizeVarint(3), Buffer.from([0])]) },
  ])
  const cases: [string, Buffer, string][] = [
    ['type 5', fix(typeFive), 'object_type'],
    ['declared size differs from the inflated size', wrongSize, 'zlib_size_mismatch'],
    ['a broken delta for a commit', brokenDelta, 'commit_delta'],
  ]
  t.equal((await read(good)).kind, 'pack')
  for (const [name, pack, detail] of cases)
    t.match(await read(pack), { kind: 'unreadable', problem: 'malformed', detail }, name)
})

t.test('an OFS_DELTA must point at the start of an earlier object', async (t) => {
  const c1 = commitBody('sha1', [], 'one')
  const pack = Buffer.from(
    craftPack('sha1', [
      { type: 1, body: c1 },
      { ofsDeltaOf: 0, delta: insertDelta(c1.length, c1) },
    ]),
  )
  // c1 needs a 2-byte type/size header; the delta entry follows the first entry.
  let p = 12 + 2 + deflateSync(c1).length
  while (pack[p]! & 0x80) p++
  p++
  t.equal(pack[p]! & 0x80, 0, 'the distance fits one byte')
  pack[p] = pack[p]! - 1 // now one byte into the first object
  t.match(await read(fix(pack)), { kind: 'unreadable', problem: 'malformed', detail: 'delta_base' })
})

t.test('a zlib stream padded with empty blocks far past its size is refused', async (t) => {
  // Stored empty blocks (00 00 00 ff ff) are valid deflate but produce nothing.
  const header = Buffer.from([0x30 | 1]) // blob, size 1
  const pad = Buffer.alloc(5 * 20_000)
  for (let i = 0; i < 20_000; i++) pad.set([0x00, 0x00, 0x00, 0xff, 0xff], i * 5)
  const stream = Buffer.concat([
    Buffer.from([0x78, 0x01]),
    pad,
    Buffer.from([0x01, 0x01, 0x00, 0xfe, 0xff, 0x41]),
    Buffer.alloc(4),
  ])
  const body = Buffer.concat([Buffer.from('PACK\0\0\0\x02\0\0\0\x01', 'latin1'), header, stream])
  const pack = Buffer.concat([body, createHash('sha1').update(body).digest()])
  t.match(await read(pack), { kind: 'unreadable', problem: 'malformed', detail: 'zlib_stream_too_long' })
})

function fix(pack: Buffer): Buffer {
  const body = pack.subarray(0, pack.length - 20)
  return Buffer.concat([body, createHash('sha1').update(body).digest()])
}

t.test('large objects inflated in chunks: truncated and corrupt streams are typed', async (t) => {
  const blob = Buffer.alloc(300_000, 0x61)
  const pack = craftPack('sha1', [{ type: 3, body: blob }])
  const streamed = { ...DEFAULT_PACK_LIMITS, inMemoryObjectBytes: 1024 }
  t.match(await readPack(createBufferSource(pack), 'sha1', streamed), { kind: 'pack' })
  const cut = pack.subarray(0, 14 + 100)
  t.match(await readPack(createBufferSource(cut), 'sha1', streamed), { kind: 'unreadable', problem: 'truncated' })
  const corrupt = Buffer.from(pack)
  corrupt.fill(0xff, 20, 40)
  t.match(await readPack(createBufferSource(fix(corrupt)), 'sha1', streamed), {
    kind: 'unreadable',
    problem: 'malformed',
  })
  const wrongSize = craftPack('sha1', [{ type: 3, body: blob, declaredSize: 299_999 }])
  t.match(await readPack(createBufferSource(wrongSize), 'sha1', streamed), {
    kind: 'unreadable',
    problem: 'malformed',
    detail: 'zlib_size_mismatch',
  })
  const longer = craftPack('sha1', [{ type: 3, body: blob, declaredSize: 300_001 }])
  t.match(await readPack(createBufferSource(longer), 'sha1', streamed), {
    kind: 'unreadable',
    problem: 'malformed',
    detail: 'zlib_size_mismatch',
  })
})

t.test('noted REF_DELTAs obey the depth and size limits when resolved', async (t) => {
  const c1 = commitBody('sha1', [], 'one')
  const c2 = commitBody('sha1', [oid(c1)], 'two'.repeat(100))
  const pack = craftPack('sha1', [
    { refDeltaOf: oid(c1), delta: insertDelta(c1.length, c2) },
    { type: 1, body: c1 },
  ])
  const deep = await readPack(createBufferSource(pack), 'sha1', { ...DEFAULT_PACK_LIMITS, maxDeltaDepth: 0 })
  t.match(deep, { kind: 'pack', pack: { stats: { commits: 1, deltaCommits: 0, skippedCommits: 1 } } })
  // A small delta that copies its base four times: the target outgrows maxCommitBytes only when applied.
  const copy = Buffer.from([0x80 | 0x10, c1.length])
  const blowUp = Buffer.concat([sizeVarint(c1.length), sizeVarint(4 * c1.length), copy, copy, copy, copy])
  const grows = craftPack('sha1', [
    { refDeltaOf: oid(c1), delta: blowUp },
    { type: 1, body: c1 },
  ])
  const small = await readPack(createBufferSource(grows), 'sha1', {
    ...DEFAULT_PACK_LIMITS,
    maxCommitBytes: c1.length + 1,
  })
  t.match(small, { kind: 'pack', pack: { stats: { commits: 1, deltaCommits: 0, skippedCommits: 1 } } })
  const broken = craftPack('sha1', [
    { refDeltaOf: oid(c1), delta: Buffer.concat([sizeVarint(c1.length), sizeVarint(3), Buffer.from([0])]) },
    { type: 1, body: c1 },
  ])
  t.match(await read(broken), { kind: 'unreadable', problem: 'malformed', detail: 'commit_delta' })
})
