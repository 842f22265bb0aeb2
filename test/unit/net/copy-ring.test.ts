import t from 'tap'
import { CopyRing } from '../../../src/net/copy-ring.js'

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill)

t.test('a copy holds the bytes as they were, whatever happens to the original', async (t) => {
  const ring = new CopyRing(64)
  const original = bytes(10, 1)
  const copy = ring.copy(original)
  original.fill(9)
  t.same(copy, bytes(10, 1))
  t.equal(ring.inUse, 1)
})

t.test('copies never overlap one still out; given back in order, their room is used again', async (t) => {
  const ring = new CopyRing(64)
  const a = ring.copy(bytes(30, 1))
  const b = ring.copy(bytes(30, 2))
  t.ok(a && b)
  t.equal(ring.copy(bytes(10, 3)), null, 'no room: 60 of 64 bytes are out')
  ring.release() // a is written
  const c = ring.copy(bytes(20, 3))
  t.ok(c, 'wraps to the start, where a was')
  t.same(b, bytes(30, 2), 'b is untouched by c')
  t.same(c, bytes(20, 3))
  t.equal(ring.copy(bytes(11, 4)), null, 'between c (ends at 20) and b (starts at 30) there are 10 bytes')
  const d = ring.copy(bytes(10, 4))
  t.ok(d, '10 fit exactly')
  t.same(b, bytes(30, 2))
  t.same(c, bytes(20, 3))
  t.equal(ring.copy(bytes(1, 5)), null, 'full')
  ring.release() // b
  ring.release() // c
  ring.release() // d
  t.equal(ring.inUse, 0)
  t.ok(ring.copy(bytes(64, 6)), 'all of it again once everything is given back')
})

t.test('what cannot be copied is refused, and a stray release changes nothing', async (t) => {
  const ring = new CopyRing(16)
  t.equal(ring.copy(bytes(17, 1)), null, 'larger than the ring')
  t.equal(ring.copy(Buffer.alloc(0)), null, 'empty: nothing to hold')
  ring.release()
  t.equal(ring.inUse, 0)
  const a = ring.copy(bytes(8, 1))
  t.ok(a)
  ring.release()
  ring.release()
  t.equal(ring.inUse, 0)
  t.ok(ring.copy(bytes(16, 2)), 'the whole ring is free again')
})

t.test('a long run of copies and releases never hands out bytes still in use', async (t) => {
  const ring = new CopyRing(1000)
  const out: { copy: Buffer; fill: number }[] = []
  let fill = 0
  let seed = 7
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  for (let i = 0; i < 5000; i++) {
    if (out.length > 0 && rand(3) === 0) {
      ring.release()
      out.shift()
    } else {
      fill = (fill + 1) % 256
      const copy = ring.copy(bytes(1 + rand(300), fill))
      if (copy) out.push({ copy, fill })
    }
    for (const o of out) if (o.copy.some((b) => b !== o.fill)) return t.fail(`a copy was overwritten at step ${i}`)
  }
  t.pass('every copy out kept its bytes')
})
