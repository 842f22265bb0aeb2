/**
 * A small pool of worker threads for CPU-heavy jobs the event loop must not run (body scans,
 * packument rewrites). Workers start on first use and take one job at a time; jobs wait in arrival
 * order; an idle worker does not keep the process alive; close() ends them all. A worker that dies
 * fails its job closed (`failed('worker_failed')`) and is replaced on demand.
 *
 * What a job is, what is posted for it and what a reply means belong to the caller (`send`,
 * `receive`): a reply may finish the job or ask for it to be sent again to the same worker (a worker
 * that has forgotten the rules a job refers to). Each worker carries caller state (`slotState`).
 */
import { Worker } from 'node:worker_threads'

export type WorkerFailure = 'worker_failed' | 'closed'

export interface WorkerPoolOptions<Job, Reply, Result, State> {
  /** The worker's module (the .ts source under a TypeScript loader, the built .js otherwise). */
  readonly url: URL
  readonly size: number
  readonly onWorkerError: (err: unknown) => void
  /** What a job resolves to when its worker dies or the pool is closed. */
  readonly failed: (why: WorkerFailure) => Result
  /** A new worker's caller state. */
  readonly slotState: () => State
  /** What to post for a job to a worker in `state` (and the buffers to transfer with it). */
  send(job: Job, state: State): { readonly message: unknown; readonly transfer: readonly ArrayBuffer[] }
  /** A worker's reply: the job's result, or the job to send again to the same worker. */
  receive(reply: Reply, job: Job, state: State): { readonly done: Result } | { readonly again: Job }
}

export interface WorkerPool<Job, Result> {
  run(job: Job): Promise<Result>
  readonly closed: boolean
  close(): void
}

interface Pending<Job, Result> {
  job: Job
  readonly resolve: (result: Result) => void
}

interface Slot<Job, Result, State> {
  readonly worker: Worker
  readonly state: State
  pending: Pending<Job, Result> | null
}

export function createWorkerPool<Job, Reply, Result, State>(
  o: WorkerPoolOptions<Job, Reply, Result, State>,
): WorkerPool<Job, Result> {
  const slots: Slot<Job, Result, State>[] = []
  const waiting: Pending<Job, Result>[] = []
  let closed = false

  const start = (slot: Slot<Job, Result, State>, pending: Pending<Job, Result>): void => {
    slot.pending = pending
    slot.worker.ref()
    const { message, transfer } = o.send(pending.job, slot.state)
    slot.worker.postMessage(message, [...transfer])
  }

  const dispatch = (): void => {
    while (waiting.length > 0) {
      let slot = slots.find((s) => s.pending === null)
      if (slot === undefined && slots.length < o.size) slot = spawn()
      if (slot === undefined) return
      start(slot, waiting.shift()!)
    }
  }

  const spawn = (): Slot<Job, Result, State> => {
    const slot: Slot<Job, Result, State> = { worker: new Worker(o.url), state: o.slotState(), pending: null }
    slot.worker.on('message', (reply: Reply) => {
      const pending = slot.pending
      if (pending === null) return
      const next = o.receive(reply, pending.job, slot.state)
      if ('again' in next) return start(slot, { ...pending, job: next.again })
      slot.pending = null
      slot.worker.unref()
      pending.resolve(next.done)
      dispatch()
    })
    slot.worker.on('error', (err) => o.onWorkerError(err))
    slot.worker.once('exit', () => {
      slots.splice(slots.indexOf(slot), 1)
      slot.pending?.resolve(o.failed(closed ? 'closed' : 'worker_failed'))
      slot.pending = null
      if (!closed) dispatch()
    })
    slots.push(slot)
    return slot
  }

  return {
    run(job) {
      if (closed) return Promise.resolve(o.failed('closed'))
      return new Promise((resolve) => {
        waiting.push({ job, resolve })
        dispatch()
      })
    },
    get closed() {
      return closed
    },
    close() {
      if (closed) return
      closed = true
      for (const pending of waiting.splice(0)) pending.resolve(o.failed('closed'))
      for (const slot of slots) void slot.worker.terminate()
    },
  }
}

/**
 * One worker for jobs posted as they are, whose reply is the result (or `{kind: 'failed', why}` when
 * the worker dies or the pool is closed): a run of seconds now and then (a suggestion, a large config).
 */
export function createOneWorker<Job, Reply>(
  url: URL,
  onWorkerError: (err: unknown) => void,
): WorkerPool<Job, Reply | { readonly kind: 'failed'; readonly why: WorkerFailure }> {
  return createWorkerPool<Job, Reply, Reply | { readonly kind: 'failed'; readonly why: WorkerFailure }, null>({
    url,
    size: 1,
    onWorkerError,
    failed: (why) => ({ kind: 'failed', why }),
    slotState: () => null,
    send: (job) => ({ message: job, transfer: [] }),
    receive: (reply) => ({ done: reply }),
  })
}

/** Bytes a worker may own: a view on part of a shared (pooled) buffer is copied first. */
export function transferable(bytes: Uint8Array): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
  return (whole ? bytes : bytes.slice()).buffer as ArrayBuffer
}

/** A worker module beside `from` (the pool's own module): `.ts` under a TypeScript loader, `.js` built. */
export function workerUrl(from: string, name: string): URL {
  return new URL(from.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, from)
}
