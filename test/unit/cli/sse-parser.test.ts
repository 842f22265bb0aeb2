import t from 'tap'
import { createSseParser, type SseEvent } from '../../../src/cli/admin-client.js'

/** Feed `chunks` one by one; the events parsed. */
function parse(...chunks: string[]): SseEvent[] {
  const out: SseEvent[] = []
  const feed = createSseParser((e) => out.push(e))
  for (const c of chunks) feed(c)
  return out
}

const CASES: ReadonlyArray<readonly [string, readonly string[], readonly SseEvent[]]> = [
  ['one event', ['event: decision\ndata: {"a":1}\n\n'], [{ event: 'decision', data: '{"a":1}' }]],
  ['no event field means message', ['data: x\n\n'], [{ event: 'message', data: 'x' }]],
  ['several data lines join with a newline', ['data: a\ndata: b\n\n'], [{ event: 'message', data: 'a\nb' }]],
  ['one leading space of a value is dropped, no more', ['data:  two\n\n'], [{ event: 'message', data: ' two' }]],
  ['a value without a space', ['data:x\n\n'], [{ event: 'message', data: 'x' }]],
  ['comments are skipped', [': keepalive\n\n: connected\ndata: x\n\n'], [{ event: 'message', data: 'x' }]],
  ['an event without data is not dispatched', ['event: ping\n\n'], []],
  ['retry and id (unused) are ignored', ['retry: 2000\nid: 7\ndata: x\n\n'], [{ event: 'message', data: 'x' }]],
  ['a field name alone is an empty value', ['data\n\n'], [{ event: 'message', data: '' }]],
  ['\\r\\n line ends', ['event: e\r\ndata: x\r\n\r\n'], [{ event: 'e', data: 'x' }]],
  ['\\r line ends', ['event: e\rdata: x\r\r', ':'], [{ event: 'e', data: 'x' }]],
  ['a \\r at the end of a chunk waits: it may be half of \\r\\n', ['data: x\r\r'], []],
  ['a \\r\\n split across chunks is one line end', ['data: x\r', '\n\r', '\n'], [{ event: 'message', data: 'x' }]],
  [
    'an event split anywhere across chunks',
    ['ev', 'ent: dec', 'ision\nda', 'ta: {"a"', ':1}\n', '\n'],
    [{ event: 'decision', data: '{"a":1}' }],
  ],
  ['an incomplete event waits for its blank line', ['data: x\n'], []],
  [
    'the event name does not carry over to the next event',
    ['event: dropped\ndata: {"dropped":3}\n\ndata: y\n\n'],
    [
      { event: 'dropped', data: '{"dropped":3}' },
      { event: 'message', data: 'y' },
    ],
  ],
]

for (const [behaviour, chunks, events] of CASES) {
  t.test(behaviour, async (t) => {
    t.strictSame(parse(...chunks), events)
  })
}

t.test('byte by byte gives the same events as all at once', async (t) => {
  const text = 'retry: 2000\n: connected\n\nevent: decision\ndata: {"a":1}\r\n\r\nevent: close\rdata: 2\r\r: end\n'
  t.strictSame(parse(...text.split('')), parse(text))
  t.equal(parse(text).length, 2)
})
