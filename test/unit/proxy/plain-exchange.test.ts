import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import t from 'tap'
import { carryExchange } from '../../../src/proxy/plain-exchange.js'
import { createTunnelTracker } from '../../../src/proxy/tracker.js'

/** Enough of a socket: 'close' once destroyed. */
function fakeSocket(): Socket & { destroyedBy: number } {
  const s = new EventEmitter() as Socket & { destroyedBy: number }
  s.destroyedBy = 0
  s.destroy = () => {
    s.destroyedBy++
    s.emit('close')
    return s
  }
  return s
}

const facts = (path: string) =>
  ({
    agent: 'ci',
    host: 'origin.test',
    port: 80,
    address: '127.0.0.1',
    pinned: true,
    credential: { kind: 'source' },
    request: { method: 'GET', path, scheme: 'http' },
  }) as const

t.test('one tracker entry per plain connection, seen by the sweeps only while an answer is in flight', async (t) => {
  const tracker = createTunnelTracker()
  const socket = fakeSocket()
  const counted: string[] = []
  const first = carryExchange(tracker, socket, '127.0.0.1', facts('/a'), { account: () => counted.push('a') })
  t.equal(tracker.size, 1)
  t.equal(tracker.connections, 0, 'not a tunnel: active_tunnels does not count it')
  const seen = [...tracker.all()]
  t.match(seen, [{ via: 'request', request: { path: '/a' }, agent: 'ci', srcIp: '127.0.0.1' }])
  seen[0]?.connection.account()
  t.same(counted, ['a'], 'the bytes sweep counts the answer in flight')
  first()
  t.same([...tracker.all()], [], 'between requests: nothing to judge or cut')
  const second = carryExchange(tracker, socket, '127.0.0.1', facts('/b'), { account: () => counted.push('b') })
  t.equal(tracker.size, 1, 'the same entry carries the next request')
  first()
  t.match([...tracker.all()], [{ request: { path: '/b' } }], 'a late done() of an earlier request changes nothing')
  ;[...tracker.all()][0]?.close()
  t.equal(socket.destroyedBy, 1, 'closing it closes the client connection')
  t.equal(tracker.size, 0, 'and the connection’s close removes it')
  second()
})
