import t from 'tap'
import { isFastForward } from '../../../src/git/fast-forward.js'
import type { ObjectFormat } from '../../../src/git/object-format.js'
import { DEFAULT_PACK_LIMITS, readPack, type PackReadResult } from '../../../src/git/pack.js'
import { createBufferSource } from '../../../src/git/pack-source.js'
import { encodePktLine, FLUSH_PKT, readPktLine } from '../../../src/git/pkt-line.js'
import { parseReceivePackHead } from '../../../src/git/receive-pack.js'
import { checkRefname } from '../../../src/git/refname.js'
import { commitBody, craftPack, fixTrailer, insertDelta, longText, makeRepo } from './git-fixtures.js'
import { seededRandom } from '../../helpers/seeded-random.js'

/**
 * Seeded random mutation and truncation of valid inputs: every parser must
 * answer with a typed result, never throw, and finish. Counts are fixed, so
 * a failure replays with the same seed.
 */

const SEED = 0x5eed_1234

function mutate(input: Buffer, rand: () => number, keepPrefix = 0): Buffer {
  const out = Buffer.from(input)
  const int = (n: number) => Math.floor(rand() * n)
  const at = () => keepPrefix + int(Math.max(1, out.length - keepPrefix))
  switch (int(6)) {
    case 0: // flip a few bits
      for (let i = int(4) + 1; i > 0; i--) {
        const p = at()
        out[p] = out[p]! ^ (1 << int(8))
      }
      return out
    case 1: // set a byte to an interesting value
      out[at()] = [0x00, 0x0a, 0x20, 0x30, 0x66, 0x7f, 0x80, 0xff][int(8)]!
      return out
    case 2: // truncate
      return out.subarray(0, at())
    case 3: {
      // insert random bytes
      const p = at()
      return Buffer.concat([
        out.subarray(0, p),
        Buffer.from(Array.from({ length: int(8) + 1 }, () => int(256))),
        out.subarray(p),
      ])
    }
    case 4: {
      // delete a range
      const p = at()
      return Buffer.concat([out.subarray(0, p), out.subarray(p + int(16) + 1)])
    }
    default: {
      // duplicate a range
      const p = at()
      const q = Math.min(out.length, p + int(64) + 1)
      return Buffer.concat([out.subarray(0, q), out.subarray(p, q), out.subarray(q)])
    }
  }
}

/** Fail the test if `p` has not settled within `ms` (a watchdog, not a sleep: it is cleared at once). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined
  const watchdog = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)))
  try {
    return await Promise.race([p, watchdog])
  } finally {
    clearTimeout(timer)
  }
}

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const Z = '0'.repeat(40)

t.test('pkt-line reader: random and mutated streams always end in a typed answer', async (t) => {
  const rand = seededRandom(SEED)
  const valid = Buffer.concat([
    encodePktLine('hello\n'),
    FLUSH_PKT,
    Buffer.from('0001'),
    encodePktLine(Buffer.alloc(300, 1)),
    Buffer.from('0002'),
  ])
  let packets = 0
  for (let i = 0; i < 2000; i++) {
    const input =
      i % 2 === 0
        ? mutate(valid, rand)
        : Buffer.from(
            Array.from({ length: Math.floor(rand() * 40) }, () =>
              '0123456789abcdefg\n'.charCodeAt(Math.floor(rand() * 18)),
            ),
          )
    let off = 0
    for (let step = 0; step <= input.length; step++) {
      const r = readPktLine(input, off)
      if (r.kind !== 'packet') {
        if (r.kind !== 'need_more' && r.kind !== 'invalid') t.fail(`unexpected ${JSON.stringify(r)}`)
        break
      }
      if (r.next <= off || r.next > input.length) t.fail('no progress or overrun')
      off = r.next
      packets++
    }
  }
  t.ok(packets > 1000, `read ${packets} packets along the way`)
})

t.test('receive-pack head: mutated heads are head, need_more or a typed error, never a throw', async (t) => {
  const rand = seededRandom(SEED + 1)
  const seeds = [
    Buffer.concat([
      encodePktLine(
        Buffer.from(`${A} ${B} refs/heads/main\0 report-status-v2 side-band-64k object-format=sha1 push-options`),
      ),
      encodePktLine(`${Z} ${B} refs/heads/agent/x\n`),
      FLUSH_PKT,
      encodePktLine('opt'),
      FLUSH_PKT,
      Buffer.from('PACK'),
    ]),
    Buffer.concat([
      encodePktLine(`shallow ${A}`),
      encodePktLine(Buffer.from(`${A} ${Z} refs/tags/v1\0 report-status`)),
      FLUSH_PKT,
    ]),
    Buffer.concat([
      encodePktLine(Buffer.from('push-cert\0 report-status')),
      encodePktLine('certificate version 0.1\n'),
      encodePktLine('\n'),
      encodePktLine(`${A} ${B} refs/heads/main\n`),
      encodePktLine('-----BEGIN PGP SIGNATURE-----\n'),
      encodePktLine('push-cert-end\n'),
      FLUSH_PKT,
    ]),
  ]
  const kinds = { head: 0, need_more: 0, error: 0 }
  for (let i = 0; i < 3000; i++) {
    let input: Buffer = seeds[i % seeds.length]!
    for (let k = Math.floor(rand() * 3) + 1; k > 0; k--) input = mutate(input, rand)
    let r: ReturnType<typeof parseReceivePackHead>
    try {
      r = parseReceivePackHead(input, { final: rand() < 0.5 })
    } catch (e) {
      t.fail(`threw on ${input.toString('hex')}: ${String(e)}`)
      continue
    }
    kinds[r.kind]++
    if (r.kind === 'head') {
      if (r.head.packOffset > input.length) t.fail('packOffset past the input')
      for (const c of r.head.commands) {
        if (checkRefname(c.ref) !== null) t.fail(`accepted a bad ref ${JSON.stringify(c.ref)}`)
        if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(c.old + '') || !/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(c.new))
          t.fail('bad oid')
      }
    }
  }
  t.ok(kinds.head > 0 && kinds.need_more > 0 && kinds.error > 0, JSON.stringify(kinds))
})

t.test('pack reader: mutated and truncated packs give a typed result and finish', async (t) => {
  const rand = seededRandom(SEED + 2)
  const dir = t.testdir()
  const sha1 = makeRepo(`${dir}/sha1`)
  const ids: string[] = []
  for (let i = 0; i < 6; i++) ids.push(sha1.commit(`c${i}\n\n${longText(i, 40)}`, { 'a.txt': longText(i) }))
  const sha256 = makeRepo(`${dir}/sha256`, 'sha256')
  for (let i = 0; i < 3; i++) sha256.commit(`c${i}\n\n${longText(i, 40)}`, { 'a.txt': longText(i) })
  const c1 = commitBody('sha1', [], 'one')
  const seeds: [Buffer, ObjectFormat][] = [
    [sha1.pack([ids[5]!, `^${ids[0]}`]), 'sha1'],
    [sha1.pack([ids[5]!, `^${ids[0]}`], { refDelta: true }), 'sha1'],
    [sha256.pack(['HEAD']), 'sha256'],
    [
      craftPack('sha1', [
        { type: 1, body: c1 },
        { ofsDeltaOf: 0, delta: insertDelta(c1.length, commitBody('sha1', [A], 'two')) },
      ]),
      'sha1',
    ],
  ]
  const limits = { ...DEFAULT_PACK_LIMITS, maxInflatedBytes: 64 * 1024 * 1024, maxObjects: 10_000 }
  const problems = new Map<string, number>()
  let readable = 0
  for (let i = 0; i < 1000; i++) {
    const [seed, format] = seeds[i % seeds.length]!
    let input: Buffer = mutate(seed, rand, 12)
    // Mostly keep the checksum right, so that the walk itself is what gets exercised.
    if (rand() < 0.8) input = fixTrailer(input, format)
    // Every other case inflates each object in chunks, so the streaming path is fuzzed as well.
    const caseLimits = i % 2 === 0 ? limits : { ...limits, inMemoryObjectBytes: 16 }
    const r = await within(readPack(createBufferSource(input), format, caseLimits), 10_000)
    if (r === 'hung') {
      t.fail(`hung on case ${i}`)
      continue
    }
    check(r)
    isFastForward(r, A, B)
  }
  function check(r: PackReadResult): void {
    if (r.kind === 'pack') readable++
    else problems.set(r.problem, (problems.get(r.problem) ?? 0) + 1)
  }
  t.ok(readable > 0, `${readable} mutants still read as packs`)
  t.ok(problems.size >= 3, JSON.stringify([...problems]))
  t.notOk(problems.has('read_error'), 'no mutant reached the "exception" fallback')
  // Every prefix of a real pack is unreadable, and says so.
  const [pack] = seeds[0]!
  for (let n = 0; n < pack.length; n += Math.max(1, Math.floor(pack.length / 150))) {
    const r = await readPack(createBufferSource(pack.subarray(0, n)), 'sha1')
    if (r.kind !== 'unreadable') t.fail(`prefix ${n} read as a pack`)
  }
})
