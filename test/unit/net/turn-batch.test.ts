import t from 'tap'
import { atTurnEnd, corkUntilTurnEnd } from '../../../src/net/turn-batch.js'

t.test('tasks run after the current turn, in the order queued, with their argument', async (t) => {
  const seen: string[] = []
  atTurnEnd((s: string) => seen.push(s), 'a')
  atTurnEnd(() => seen.push('b'))
  seen.push('inline')
  t.same(seen, ['inline'], 'nothing runs before the turn ends')
  await new Promise((r) => setImmediate(r))
  t.same(seen, ['inline', 'a', 'b'])
})

t.test('a task queued by a task runs in the same batch', async (t) => {
  const seen: string[] = []
  atTurnEnd(() => {
    seen.push('first')
    atTurnEnd(() => seen.push('queued by first'))
  })
  // An Immediate queued now runs after the batch's: the batch ran both before it.
  await new Promise((r) => setImmediate(r))
  t.same(seen, ['first', 'queued by first'])
})

t.test('a throwing task is seen, and the tasks after it still run', async (t) => {
  const seen: string[] = []
  const thrown: unknown[] = []
  const onError = (err: unknown): void => void thrown.push(err)
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', onError)
  t.teardown(() => {
    process.removeListener('uncaughtException', onError)
    for (const l of listeners) process.on('uncaughtException', l)
  })
  atTurnEnd(() => seen.push('before'))
  atTurnEnd(() => {
    throw new Error('boom')
  })
  atTurnEnd(() => seen.push('after'))
  await new Promise((r) => setTimeout(r, 20))
  t.same(seen, ['before', 'after'])
  t.equal(thrown.length, 1)
  t.match(String(thrown[0]), /boom/)
  // The queue is usable again afterwards.
  atTurnEnd(() => seen.push('later'))
  await new Promise((r) => setImmediate(r))
  t.same(seen, ['before', 'after', 'later'])
})

t.test('corkUntilTurnEnd holds writes until the batch, then releases them once', async (t) => {
  const calls: string[] = []
  const socket = { cork: () => calls.push('cork'), uncork: () => calls.push('uncork') }
  corkUntilTurnEnd(socket)
  t.same(calls, ['cork'])
  await new Promise((r) => setImmediate(r))
  t.same(calls, ['cork', 'uncork'])
})
