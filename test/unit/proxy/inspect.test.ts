import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { PassThrough, Readable } from 'node:stream'
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import { createScanPool } from '../../../src/proxy/scan-pool.js'
import {
  createInspector,
  INSPECT_DEFAULTS,
  type InspectedRequest,
  type InspectorOptions,
} from '../../../src/proxy/inspect.js'

const KEY_ID = 'AKIAIOSFODNN7EXAMPLE'
const PEM = '-----BEGIN RSA PRIVATE KEY-----'

/** A request whose body has fully arrived. */
function request(body: string | Buffer, headers: Record<string, string> = {}, complete = true): InspectedRequest {
  const chunks = body.length === 0 ? [] : [Buffer.from(body)]
  return Object.assign(Readable.from(chunks), {
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
    rawHeaders: Object.entries(headers).flat(),
    complete,
  })
}

/** A request whose body is still on its way until `finish()`. */
function heldRequest(): { req: InspectedRequest; finish: () => void } {
  const stream = new PassThrough()
  const req = Object.assign(stream, { headers: {}, rawHeaders: [] as string[] })
  Object.defineProperty(req, 'complete', { get: () => stream.readableEnded })
  return { req: req as unknown as InspectedRequest, finish: () => stream.end('clean') }
}

function inspector(t: Test, options: InspectorOptions = {}) {
  const i = createInspector({ workers: 0, ...options })
  t.teardown(() => i.close())
  return i
}

type Case = readonly [behaviour: string, body: string | Buffer, headers: Record<string, string>, expected: object]

const gz = (s: string | Buffer): Buffer => gzipSync(s)

const VERDICTS: readonly Case[] = [
  ['a clean body passes', 'name=widgets&version=1.2.3', {}, { kind: 'clean' }],
  ['a key in the body', `aws_access_key_id=${KEY_ID}`, {}, { kind: 'secret', detector: 'aws_access_key_id' }],
  ['a key in a header value', 'x', { 'X-Debug': KEY_ID }, { kind: 'secret', detector: 'aws_access_key_id' }],
  ['a key in a header name', 'x', { [`X-${KEY_ID}`]: '1' }, { kind: 'secret', detector: 'aws_access_key_id' }],
  ['a percent-encoded key in a cookie', 'x', { Cookie: 't=%41KIAIOSFODNN7EXAMPLE' }, { detector: 'aws_access_key_id' }],
  ['a JSON-escaped key', '{"k":"\\u0041KIAIOSFODNN7EXAMPLE"}', {}, { detector: 'aws_access_key_id' }],
  ['a form-encoded PEM header', 'k=-----BEGIN+RSA+PRIVATE+KEY-----%0AMIIE', {}, { detector: 'private_key' }],
  ['a UTF-16LE body', Buffer.from(`{"k":"${KEY_ID}"}`, 'utf16le'), {}, { detector: 'aws_access_key_id' }],
  ['a gzip body hiding a key', gz(`{"k":"${PEM}"}`), { 'Content-Encoding': 'gzip' }, { detector: 'private_key' }],
  ['a brotli body', brotliCompressSync(KEY_ID), { 'Content-Encoding': 'br' }, { detector: 'aws_access_key_id' }],
  ['a zlib deflate body', deflateSync(KEY_ID), { 'Content-Encoding': 'deflate' }, { detector: 'aws_access_key_id' }],
  ['a raw deflate body', deflateRawSync(KEY_ID), { 'Content-Encoding': 'deflate' }, { detector: 'aws_access_key_id' }],
  [
    'bytes after the end of a deflate stream',
    Buffer.concat([deflateSync('clean'), Buffer.from(`\n{"k":"${KEY_ID}"}`)]),
    { 'Content-Encoding': 'deflate' },
    { detector: 'aws_access_key_id' },
  ],
  [
    'stacked encodings, decoded last first',
    brotliCompressSync(gz(KEY_ID)),
    { 'Content-Encoding': 'gzip, br' },
    { detector: 'aws_access_key_id' },
  ],
  [
    'identity among the encodings',
    gz(KEY_ID),
    { 'Content-Encoding': 'identity, GZIP' },
    { detector: 'aws_access_key_id' },
  ],
  [
    'a token as HTTP Basic (git, curl -u)',
    'x',
    { Authorization: `Basic ${Buffer.from(`x-access-token:ghp_${'A1b2'.repeat(9)}`).toString('base64')}` },
    { kind: 'secret', detector: 'github_token' },
  ],
  [
    'a key as HTTP Basic, lower-case scheme, unpadded',
    'x',
    { authorization: `basic ${Buffer.from(`${KEY_ID}:pw`).toString('base64').replace(/=+$/, '')}` },
    { detector: 'aws_access_key_id' },
  ],
  [
    'a token as Basic in a list, or with its base64 broken by spaces',
    'x',
    {
      Authorization: `Basic ${Buffer.from(`x-access-token:ghp_${'A1b2'.repeat(9)}`)
        .toString('base64')
        .replace(/(.{20})/g, '$1 ')}, Basic Zm9vOmJhcg==`,
    },
    { kind: 'secret', detector: 'github_token' },
  ],
  [
    // Built to make a backtracking pattern take minutes: the scan must stay linear in the header.
    'a Basic value of spaces and letters that is not base64',
    'x',
    { Authorization: `Basic ${' a'.repeat(40_000)}!` },
    { kind: 'clean' },
  ],
  [
    'a plain Basic login passes',
    'x',
    { Authorization: `Basic ${Buffer.from('alice:correct horse').toString('base64')}` },
    { kind: 'clean' },
  ],
  ['an empty gzip body', '', { 'Content-Encoding': 'gzip' }, { kind: 'clean' }],
  ['an unknown encoding', 'x', { 'Content-Encoding': 'zstd' }, { kind: 'uninspectable', detail: 'unknown_encoding' }],
  ['a corrupt gzip body', 'not gzip at all', { 'Content-Encoding': 'gzip' }, { detail: 'corrupt_encoding' }],
  [
    'a truncated gzip body',
    gz(`clean ${'text '.repeat(100)}`).subarray(0, 30),
    { 'Content-Encoding': 'gzip' },
    { kind: 'uninspectable', detail: 'corrupt_encoding' },
  ],
  [
    'three stacked encodings',
    gz(gz(gz('x'))),
    { 'Content-Encoding': 'gzip, gzip, gzip' },
    { kind: 'uninspectable', detail: 'too_many_encodings' },
  ],
]
for (const [behaviour, body, headers, expected] of VERDICTS) {
  t.test(`inspect: ${behaviour}`, async (t) => {
    t.match(await inspector(t).inspect(request(body, headers), '/upload', 'a'), expected)
  })
}

t.test('a key in the request target', async (t) => {
  t.match(await inspector(t).inspect(request(''), `/x?k=%41KIAIOSFODNN7EXAMPLE`, 'a'), {
    detector: 'aws_access_key_id',
  })
})

t.test('the body comes back exactly as sent, encoded as it was', async (t) => {
  const sent = gz('{"clean":true}')
  const seen = await inspector(t).inspect(request(sent, { 'Content-Encoding': 'gzip' }), '/', 'a')
  t.equal(seen.kind, 'clean')
  t.ok(seen.kind === 'clean' && seen.body.equals(sent))
})

t.test('a gzip body whose decoded form holds a key the sent bytes do not', async (t) => {
  const sent = gz(`{"k":"${KEY_ID}"}`)
  t.notOk(sent.includes(KEY_ID))
  const seen = await inspector(t).inspect(request(sent, { 'Content-Encoding': 'gzip' }), '/', 'a')
  t.match(seen, { kind: 'secret', detector: 'aws_access_key_id' })
  t.ok(seen.kind === 'secret' && seen.body.equals(sent), 'the body is returned as sent')
})

const CAP = 64 * 1024
const CAPS: readonly Case[] = [
  ['a body at the cap with its target and headers passes', 'a'.repeat(CAP - 1 - 8), { X: 'y' }, { kind: 'clean' }],
  ['one byte more is too large', 'a'.repeat(CAP - 8), { X: 'y' }, { kind: 'uninspectable', detail: 'too_large' }],
  ['headers count towards the cap', 'a'.repeat(CAP - 1000), { X: 'y'.repeat(1000) }, { detail: 'too_large' }],
  [
    // ~100 bytes inflating to 60 KiB: within the byte cap, far past 20× (and the 4 KiB floor).
    'a compression bomb',
    gz(Buffer.alloc(60 * 1024)),
    { 'Content-Encoding': 'gzip' },
    { kind: 'uninspectable', detail: 'inflation_ratio' },
  ],
  [
    'a body that inflates past the ratio but within the floor',
    gz(Buffer.alloc(4000)),
    { 'Content-Encoding': 'gzip' },
    { kind: 'clean' },
  ],
  [
    // Hex compresses about 2×: within the ratio, but sent and decoded together exceed the cap.
    'a body whose decoded form exceeds what is left of the cap',
    gz(randomBytes(28 * 1024).toString('hex')),
    { 'Content-Encoding': 'gzip' },
    { kind: 'uninspectable', detail: 'too_large' },
  ],
]
for (const [behaviour, body, headers, expected] of CAPS) {
  t.test(`caps: ${behaviour}`, async (t) => {
    const i = inspector(t, { maxBytes: CAP, maxInflateRatio: 20, inflateFloorBytes: 4096 })
    t.match(await i.inspect(request(body, headers), '/upload', 'a'), expected)
  })
}

t.test('an option given as undefined keeps its default', async (t) => {
  const i = inspector(t, { maxBytes: undefined, maxConcurrentPerAgent: undefined })
  t.match(await i.inspect(request('a'.repeat(512 * 1024)), '/', 'a'), { kind: 'clean' })
})

t.test('a body the client stopped sending is cut off', async (t) => {
  t.match(await inspector(t).inspect(request('partial', {}, false), '/', 'a'), { detail: 'cut_off' })
  const broken = heldRequest()
  const seen = inspector(t).inspect(broken.req, '/', 'a')
  ;(broken.req as unknown as PassThrough).destroy(new Error('aborted'))
  t.match(await seen, { kind: 'uninspectable', detail: 'cut_off' })
})

t.test("a fifth inspection for one agent waits its turn while another agent's goes through", async (t) => {
  const i = inspector(t, { maxConcurrentPerAgent: 4, maxQueuedPerAgent: 1 })
  const held = Array.from({ length: 4 }, () => heldRequest())
  const running = held.map((h) => i.inspect(h.req, '/a', 'a'))
  let fifthDone = false
  const fifth = i.inspect(request('clean'), '/a', 'a').then((r) => ((fifthDone = true), r))
  t.match(await i.inspect(request(KEY_ID), '/b', 'b'), { kind: 'secret' }, "another agent's inspection completes")
  t.equal(fifthDone, false, 'the fifth still waits')
  t.match(await i.inspect(request('x'), '/a', 'a'), { kind: 'uninspectable', detail: 'busy' }, 'past the queue: busy')
  held[0]!.finish()
  t.match(await fifth, { kind: 'clean' }, 'the fifth runs once a slot frees')
  for (const h of held.slice(1)) h.finish()
  t.match(await Promise.all(running), Array(4).fill({ kind: 'clean' }))
  t.match(await i.inspect(request('x'), '/a', 'a'), { kind: 'clean' }, 'the agent has its slots back')
})

t.test('a closed inspector refuses, and so do inspections that waited', async (t) => {
  const i = inspector(t, { maxConcurrentPerAgent: 1 })
  const held = heldRequest()
  const first = i.inspect(held.req, '/', 'a')
  const waiting = i.inspect(request('x'), '/', 'a')
  i.close()
  held.finish()
  t.match(await first, { kind: 'uninspectable', detail: 'closed' })
  t.match(await waiting, { kind: 'uninspectable', detail: 'closed' })
  t.match(await i.inspect(request('x'), '/', 'a'), { detail: 'closed' })
})

t.test('with scan workers', async (t) => {
  const i = createInspector({ workers: 1 })
  t.teardown(() => i.close())
  const big = Buffer.from(`${'{"clean":"text"},'.repeat(2000)}`)
  t.test('a gzip body is decoded and scanned on a worker', async (t) => {
    const sent = gz(`{"k":"${KEY_ID}"}`)
    const seen = await i.inspect(request(sent, { 'Content-Encoding': 'gzip' }), '/', 'a')
    t.match(seen, { kind: 'secret', detector: 'aws_access_key_id' })
    t.ok(seen.kind === 'secret' && seen.body.equals(sent), 'the body comes back from the worker intact')
  })
  t.test('a body past the in-place size goes to a worker and comes back intact', async (t) => {
    const seen = await i.inspect(request(big), '/', 'a')
    t.equal(seen.kind, 'clean')
    t.ok(seen.kind === 'clean' && seen.body.equals(big))
    t.match(await i.inspect(request(Buffer.concat([big, Buffer.from(PEM)])), '/', 'a'), { detector: 'private_key' })
  })
  t.test('caps hold on a worker too', async (t) => {
    const bomb = gz(Buffer.alloc(2 * 1024 * 1024))
    t.match(await i.inspect(request(bomb, { 'Content-Encoding': 'gzip' }), '/', 'a'), { detail: 'inflation_ratio' })
  })
  t.test('after close, inspections fail closed', async (t) => {
    i.close()
    t.match(await i.inspect(request(big, { 'Content-Encoding': 'gzip' }), '/', 'a'), { detail: 'closed' })
  })
})

t.test('a scan pool closed with jobs waiting fails them closed', async (t) => {
  const pool = createScanPool(1)
  const job = { target: '/', rawHeaders: [], contentEncoding: undefined }
  const first = pool.scan({ ...job, body: Buffer.from('x') }, INSPECT_DEFAULTS)
  const second = pool.scan({ ...job, body: Buffer.from(KEY_ID) }, INSPECT_DEFAULTS)
  pool.close()
  t.match(await second, { verdict: { kind: 'uninspectable', detail: 'closed' }, body: null })
  t.match(await pool.scan({ ...job, body: Buffer.from('x') }, INSPECT_DEFAULTS), { verdict: { detail: 'closed' } })
  await first
})
