import type { Duplex } from 'node:stream'
import t from 'tap'
import { BAD_REQUEST_LINES_PER_SECOND, createBadRequests } from '../../../src/proxy/bad-requests.js'
import { capturedLog } from '../../helpers/log.js'

/** What note() reads of a socket: its peer (conn-state.ts). */
const socket = { remoteAddress: '127.0.0.1', remotePort: 4242 } as unknown as Duplex

t.test('one line per refusal, with the source, listener and detail', async (t) => {
  const captured = capturedLog()
  const bad = createBadRequests(captured.log, () => 0)
  bad.note(socket, 'tunnel', 400, 'cl_te_conflict')
  t.match(captured.lines, [
    { code: 'PC_BAD_REQUEST', src: '127.0.0.1:4242', listener: 'tunnel', status: 400, detail: 'cl_te_conflict' },
  ])
  t.same([...bad.counts], [['cl_te_conflict', 1]])
})

t.test('a detail off the closed list is counted as other', async (t) => {
  const { log } = capturedLog()
  const bad = createBadRequests(log, () => 0)
  bad.note(socket, 'proxy', 400, 'something_new')
  t.same([...bad.counts], [['other', 1]])
})

t.test('a flood writes a bounded number of lines a second and says how many it skipped', async (t) => {
  const captured = capturedLog()
  const { codes } = captured
  let now = 0
  const bad = createBadRequests(captured.log, () => now)
  for (let i = 0; i < 1000; i++) bad.note(socket, 'proxy', 400, 'duplicate_host')
  t.equal(codes('PC_BAD_REQUEST'), BAD_REQUEST_LINES_PER_SECOND, 'capped within the second')
  t.equal(bad.counts.get('duplicate_host'), 1000, 'every one counted')
  now = 1000
  bad.note(socket, 'proxy', 400, 'duplicate_host')
  t.match(captured.lines.at(-1), { suppressed: 1000 - BAD_REQUEST_LINES_PER_SECOND })
  bad.note(socket, 'proxy', 400, 'duplicate_host')
  t.notOk('suppressed' in (captured.lines.at(-1) ?? {}), 'said once')
})
