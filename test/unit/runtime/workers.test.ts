import t from 'tap'
import {
  checkWorkerCount,
  isToWorker,
  resolveWorkerCount,
  restartDelayMs,
  STABLE_MS,
} from '../../../src/runtime/workers.js'

t.test('resolveWorkerCount: a number is taken as is, auto is the available parallelism', async (t) => {
  t.equal(resolveWorkerCount(3, 8), 3)
  t.equal(resolveWorkerCount(1, 8), 1)
  t.equal(resolveWorkerCount(null, 2), 2)
  t.equal(resolveWorkerCount(null, 0), 1, 'auto is at least one')
  t.ok(resolveWorkerCount(null) >= 1, 'auto without an argument asks the machine')
})

t.test('checkWorkerCount: more than one worker needs Redis', async (t) => {
  t.doesNotThrow(() => checkWorkerCount(1, 1, null), 'one worker: no Redis needed')
  t.doesNotThrow(() => checkWorkerCount(1, null, null), 'auto on one CPU: no Redis needed')
  t.doesNotThrow(() => checkWorkerCount(2, 2, 'redis://127.0.0.1:6379'))
  t.throws(() => checkWorkerCount(2, 2, null), {
    code: 'PC_ERR_WORKERS_NEED_REDIS',
    message: /workers: 2 needs telemetry\.redis\.url/,
  })
  t.throws(() => checkWorkerCount(4, null, null), {
    code: 'PC_ERR_WORKERS_NEED_REDIS',
    message: /workers: auto \(4 CPUs\)/,
  })
})

t.test('restartDelayMs: 100 ms, doubling, at most 10 s', async (t) => {
  t.same(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => restartDelayMs(n)),
    [100, 200, 400, 800, 1600, 3200, 6400, 10_000],
  )
  t.equal(restartDelayMs(0), 100, 'no failure yet: the first delay')
  t.equal(restartDelayMs(1000), 10_000, 'a long crash loop stays at the cap')
  t.ok(STABLE_MS >= 10_000, 'a worker must run a while before its backoff resets')
})

t.test('isToWorker: only the two messages the primary sends', async (t) => {
  t.ok(isToWorker({ portcullis: 'stop', now: false }))
  t.ok(isToWorker({ portcullis: 'stop', now: true }))
  t.ok(isToWorker({ portcullis: 'reload' }))
  t.notOk(isToWorker({ portcullis: 'stop' }), 'stop says whether to drain')
  t.notOk(isToWorker({ portcullis: 'started' }))
  t.notOk(isToWorker({ cmd: 'NODE_CLUSTER' }))
  t.notOk(isToWorker(null))
  t.notOk(isToWorker('stop'))
})
