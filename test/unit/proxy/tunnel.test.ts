import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import t from 'tap'
import { createUpstreamRelay } from '../../../src/proxy/tunnel.js'

/** A client socket stand-in: records writes; `pending` bytes stay unflushed after each write; write() returns `accept`. */
class FakeClient extends EventEmitter {
  writes: Buffer[] = []
  pending = 0
  accept = true
  writable = true
  get writableLength(): number {
    return this.pending
  }
  write(chunk: Buffer): boolean {
    this.writes.push(chunk)
    return this.accept
  }
  end(): void {
    this.writable = false
  }
}

class FakeUpstream extends EventEmitter {
  resumed = 0
  destroyed = false
  resume(): void {
    this.resumed++
  }
  destroy(): void {
    this.destroyed = true
  }
}

function setup(): {
  relay: ReturnType<typeof createUpstreamRelay>
  client: FakeClient
  upstream: FakeUpstream
  read: (bytes: string) => boolean
  current: () => Buffer
} {
  const relay = createUpstreamRelay()
  const client = new FakeClient()
  const upstream = new FakeUpstream()
  const current = (): Buffer => (relay.onread.buffer as () => Buffer)()
  // What node does on a read: fill the current buffer, call back, then ask for the next buffer.
  const read = (bytes: string): boolean => {
    const buf = current()
    const n = buf.write(bytes, 'latin1')
    return relay.onread.callback(n, buf)
  }
  return { relay, client, upstream, read, current }
}

const SHARED = 16 * 1024

/** A relaying tunnel already on a buffer of its own (one read filled the shared one); returns that buffer too. */
function onOwnBuffer(): ReturnType<typeof setup> & { own: Buffer } {
  const s = setup()
  s.relay.start(s.client as unknown as Socket, s.upstream as unknown as Socket)
  s.read('s'.repeat(SHARED))
  return { ...s, own: s.current() }
}

t.test('small reads land in the shared buffer and are copied out before it is reused', async (t) => {
  const { relay, client, upstream, read, current } = setup()
  const other = setup()
  relay.start(client as unknown as Socket, upstream as unknown as Socket)
  other.relay.start(other.client as unknown as Socket, other.upstream as unknown as Socket)
  t.equal(current(), other.current(), 'one buffer for every tunnel that reads little')
  client.pending = 5
  t.equal(read('hello'), true, 'keeps reading')
  other.read('WORLD')
  t.equal(client.writes[0]?.toString(), 'hello', 'the pending write was not overwritten by another tunnel')
  t.equal(current().length, SHARED)
})

t.test(
  'a read that fills the shared buffer moves the tunnel to a buffer of its own, reused while writes go out at once',
  async (t) => {
    const { relay, client, upstream, read, current } = setup()
    relay.start(client as unknown as Socket, upstream as unknown as Socket)
    const shared = current()
    read('s'.repeat(SHARED))
    const own = current()
    t.not(own, shared)
    t.equal(own.length, 64 * 1024)
    read('o'.repeat(own.length / 2))
    t.equal(current(), own, 'same buffer while the write completed at once')
    t.equal(client.writes[1]?.length, own.length / 2)
  },
)

t.test('a write left pending keeps its own buffer: the next read goes to a new one', async (t) => {
  const { client, read, current, own: before } = onOwnBuffer()
  client.pending = 3
  t.equal(read('abc' + 'x'.repeat(20000)), true, 'below the high-water mark: keeps reading')
  t.not(current(), before, 'a new buffer for the next read')
  read('zzz' + 'y'.repeat(20000))
  t.equal(client.writes[1]?.subarray(0, 3).toString(), 'abc', 'the pending bytes were not overwritten')
})

t.test(
  'a write the client cannot take at once stops reading; after drain the same buffer is read into again',
  async (t) => {
    const { client, upstream, read, current, own } = onOwnBuffer()
    client.pending = 40000
    client.accept = false
    t.equal(read('p'.repeat(40000)), false, 'above the high-water mark: reading stops')
    // node emits drain only once every pending write has gone out, so the buffer is free again.
    client.pending = 0
    client.accept = true
    client.emit('drain')
    t.ok(upstream.resumed > 0, 'reading resumed')
    t.equal(current(), own, 'no new buffer: the same one is read into again')
    t.equal(read('q'.repeat(20000)), true)
    t.equal(client.writes.at(-1)?.toString(), 'q'.repeat(20000))
  },
)

t.test(
  'a read before drain (anything resuming upstream early) goes to a new buffer, never the one awaiting its write',
  async (t) => {
    const { client, read, current, own } = onOwnBuffer()
    client.pending = 40000
    client.accept = false
    t.equal(read('p'.repeat(40000)), false)
    const next = current()
    t.not(next, own, 'a new buffer')
    t.equal(next.length, own.length)
    read('r'.repeat(30000))
    t.equal(client.writes.at(-2)?.toString(), 'p'.repeat(40000), 'the pending write kept its bytes')
  },
)

t.test('backpressure: reading stops when the client is full and resumes on drain', async (t) => {
  const { relay, client, upstream, read } = setup()
  relay.start(client as unknown as Socket, upstream as unknown as Socket)
  const resumedAtStart = upstream.resumed
  client.accept = false
  client.pending = 1 << 20
  t.equal(read('x'), false, 'reading paused')
  client.emit('drain')
  t.equal(upstream.resumed, resumedAtStart + 1, 'resumed on drain')
})

t.test(
  'an own buffer grows while reads fill it, up to a cap, and goes back to the shared one when reads are small',
  async (t) => {
    const { relay, client, upstream, read, current } = setup()
    relay.start(client as unknown as Socket, upstream as unknown as Socket)
    const shared = current()
    read('z'.repeat(SHARED))
    for (let i = 0; i < 10; i++) read('z'.repeat(current().length))
    const max = current().length
    t.equal(max, 256 * 1024, 'capped')
    read('tiny')
    t.equal(current().length, max / 4, 'shrank after a small read')
    read('tiny')
    t.equal(current(), shared, 'back to the shared buffer')
  },
)

t.test('bytes upstream sends before the relay starts are copied, and written first', async (t) => {
  const { relay, client, upstream, read } = setup()
  t.equal(read('banner'), false, 'not started: reading paused')
  t.equal(read('+more'), false)
  relay.start(client as unknown as Socket, upstream as unknown as Socket)
  t.equal(client.writes[0]?.toString(), 'banner+more')
  t.ok(upstream.resumed > 0, 'reading resumed')
})

t.test('once the client is gone, upstream is closed instead of written to', async (t) => {
  const { relay, client, upstream, read } = setup()
  relay.start(client as unknown as Socket, upstream as unknown as Socket)
  client.writable = false
  t.equal(read('late'), false)
  t.equal(client.writes.length, 0)
  t.ok(upstream.destroyed)
})

t.test('upstream end ends the client', async (t) => {
  const { relay, client, upstream } = setup()
  relay.start(client as unknown as Socket, upstream as unknown as Socket)
  upstream.emit('end')
  t.equal(client.writable, false)
})
