import t from 'tap'
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import { decodeDocument } from '../../../src/proxy/package-gate.js'
import { MAX_DOCUMENT_BYTES } from '../../../src/packages/rewrite-job.js'
import type { WholeAnswer } from '../../../src/proxy/forward.js'

const DOC = '{"name":"demo","versions":{}}'
const answer = (coding: string | null, body: Buffer): WholeAnswer => ({
  kind: 'answer',
  status: 200,
  headers: ['content-type', 'application/json', ...(coding === null ? [] : ['content-encoding', coding])],
  body,
})

t.test('one coding of gzip, deflate (wrapped or raw) or br is decoded and its field dropped', async (t) => {
  for (const [coding, body] of [
    ['gzip', gzipSync(DOC)],
    ['x-gzip', gzipSync(DOC)],
    [' GZIP ', gzipSync(DOC)],
    ['deflate', deflateSync(DOC)],
    ['deflate', deflateRawSync(DOC)],
    ['br', brotliCompressSync(DOC)],
    ['identity', Buffer.from(DOC)],
  ] as const) {
    const out = await decodeDocument(answer(coding, body))
    t.match(out, { kind: 'answer', headers: ['content-type', 'application/json'] }, coding)
    t.equal(out.kind === 'answer' ? out.body.toString() : '', DOC, coding)
  }
})

t.test('what cannot be decoded comes back as it came, to fail closed where it is read', async (t) => {
  for (const doc of [
    answer('gzip, br', brotliCompressSync(gzipSync(DOC))),
    answer('compress', Buffer.from('x')),
    answer('gzip', Buffer.from(DOC)),
  ])
    t.same(await decodeDocument(doc), doc)
  t.same(await decodeDocument({ kind: 'too_large' }), { kind: 'too_large' })
  const plain = answer(null, Buffer.from(DOC))
  t.equal(await decodeDocument(plain), plain)
})

t.test('a document that inflates past the limit is too large, not buffered whole', async (t) => {
  const bomb = gzipSync(Buffer.alloc(MAX_DOCUMENT_BYTES + 1, 0x20))
  t.ok(bomb.length < 1024 * 1024, 'a small answer')
  t.same(await decodeDocument(answer('gzip', bomb)), { kind: 'too_large' })
})
