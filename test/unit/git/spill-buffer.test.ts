import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { buffer as collect } from 'node:stream/consumers'
import t from 'tap'
import { SpillBuffer } from '../../../src/git/spill-buffer.js'

const data = randomBytes(300_000)

async function fill(buf: SpillBuffer, bytes: Buffer, chunk: number): Promise<void> {
  for (let off = 0; off < bytes.length; off += chunk) {
    const r = await buf.append(bytes.subarray(off, off + chunk))
    if (r.kind !== 'ok') throw new Error(r.kind)
  }
}

t.test('below memoryBytes the body stays in memory and reads back exactly', async (t) => {
  const dir = t.testdir()
  const buf = new SpillBuffer({ maxBytes: 1_000_000, memoryBytes: 400_000, tmpDir: dir })
  t.teardown(() => buf.close())
  await fill(buf, data, 7_000)
  t.equal(buf.byteLength, data.length)
  t.equal(buf.spilled, false)
  t.equal(buf.spillPath, null)
  t.same(readdirSync(dir), [], 'no file was created')
  t.same(await buf.read(1000, 5000), data.subarray(1000, 6000))
  t.same(await buf.read(data.length - 10, 100), data.subarray(data.length - 10))
  t.same(await buf.read(data.length, 10), Buffer.alloc(0))
  t.same(buf.prefix(100), data.subarray(0, 100))
  t.same(await collect(buf.createReadStream()), data)
  t.same(await collect(buf.createReadStream(12345)), data.subarray(12345))
})

t.test('past memoryBytes the body goes to a private temporary file', async (t) => {
  const dir = t.testdir()
  const buf = new SpillBuffer({ maxBytes: 1_000_000, memoryBytes: 64 * 1024, tmpDir: dir })
  await fill(buf, data, 10_000)
  t.equal(buf.spilled, true)
  const path = buf.spillPath!
  t.equal(dirname(dirname(path)), dir, 'inside a fresh directory under tmpDir')
  t.equal(statSync(path).mode & 0o777, 0o600, 'file mode 0600')
  t.equal(statSync(dirname(path)).mode & 0o777, 0o700, 'directory mode 0700')
  t.equal(statSync(path).size, data.length)
  t.same(await buf.read(60_000, 10_000), data.subarray(60_000, 70_000), 'a read across the spill point')
  t.same(await buf.read(250_000, 1_000_000), data.subarray(250_000))
  t.same(buf.prefix(1_000_000), data.subarray(0, 64 * 1024), 'the head stays in memory')
  t.same(await collect(buf.createReadStream()), data)
  t.same(await collect(buf.createReadStream(299_990)), data.subarray(299_990))
  t.same(await collect(buf.createReadStream(data.length)), Buffer.alloc(0))
  await buf.close()
  t.notOk(existsSync(path), 'file removed on close')
  t.notOk(existsSync(dirname(path)), 'directory removed on close')
  await buf.close()
})

t.test('more than maxBytes is too_large and nothing more is kept', async (t) => {
  const buf = new SpillBuffer({ maxBytes: 1000, memoryBytes: 500, tmpDir: t.testdir() })
  t.teardown(() => buf.close())
  t.matchOnly(await buf.append(Buffer.alloc(600)), { kind: 'ok' })
  t.matchOnly(await buf.append(Buffer.alloc(401)), { kind: 'too_large' })
  t.matchOnly(await buf.append(Buffer.alloc(1)), { kind: 'too_large' }, 'stays refused')
  t.equal(buf.byteLength, 600)
})

t.test('exactly maxBytes is accepted', async (t) => {
  const buf = new SpillBuffer({ maxBytes: 1000, tmpDir: t.testdir() })
  t.teardown(() => buf.close())
  t.matchOnly(await buf.append(Buffer.alloc(1000)), { kind: 'ok' })
})

t.test('after close appends are refused and reads reject', async (t) => {
  const buf = new SpillBuffer({ maxBytes: 1000, tmpDir: t.testdir() })
  await buf.append(Buffer.from('abc'))
  await buf[Symbol.asyncDispose]()
  t.matchOnly(await buf.append(Buffer.from('d')), { kind: 'closed' })
  await t.rejects(buf.read(0, 1))
})

t.test('appends made without awaiting each other keep their order', async (t) => {
  const buf = new SpillBuffer({ maxBytes: 1_000_000, memoryBytes: 1000, tmpDir: t.testdir() })
  t.teardown(() => buf.close())
  const parts = Array.from({ length: 50 }, (_, i) => Buffer.alloc(97, i))
  const results = await Promise.all(parts.map((p) => buf.append(p)))
  t.ok(results.every((r) => r.kind === 'ok'))
  t.same(await buf.read(0, 1_000_000), Buffer.concat(parts))
})

t.test('packSource reads relative to an offset and knows its length', async (t) => {
  const buf = new SpillBuffer({ maxBytes: 1_000_000, memoryBytes: 1000, tmpDir: t.testdir() })
  t.teardown(() => buf.close())
  await fill(buf, data.subarray(0, 5000), 999)
  const src = buf.packSource(100)
  t.equal(src.byteLength, 4900)
  t.same(await src.read(0, 10), data.subarray(100, 110))
  t.same(await src.read(4890, 100), data.subarray(4990, 5000))
})
