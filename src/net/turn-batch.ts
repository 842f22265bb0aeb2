/**
 * Writes held to the end of the event-loop turn's poll phase, then made back to back.
 *
 * Why: a write to a loopback socket runs the receiver's TCP path in the writer's system call, and
 * wakes the receiver when it sleeps in epoll_wait; on a VM that wake-up is an inter-processor
 * interrupt, and it was the largest single cost of a forwarded request (perf of bench/focus.ts dw:
 * `_raw_spin_unlock_irqrestore` under `sock_def_readable`, 16.5 % of the proxy's CPU, 10 % from
 * writing answers to wrk). Answers written as each upstream read completes are spread over the turn,
 * so a light client (wrk, curl) is asleep again before the next one and is woken once per answer.
 * Written together after the poll phase (what Squid's event loop does, writing in the next pass
 * over ready descriptors), the first write wakes the client and the rest find it awake.
 *
 * One Immediate per turn, not per write; the queue holds a function and its argument, no closure.
 * A throw is the data path's to see (as it would have been when the write ran inline), after the
 * rest of the batch is put on the next turn.
 */
type Task = (arg: never) => void

const tasks: Task[] = []
const args: unknown[] = []
let scheduled = false

export function atTurnEnd(task: () => void): void
export function atTurnEnd<T>(task: (arg: T) => void, arg: T): void
export function atTurnEnd(task: (arg: unknown) => void, arg?: unknown): void {
  tasks.push(task as Task)
  args.push(arg)
  if (!scheduled) {
    scheduled = true
    setImmediate(runBatch)
  }
}

function runBatch(): void {
  let i = 0
  try {
    // Tasks queued by a task run in this batch too: they belong to the same turn.
    for (; i < tasks.length; i++) (tasks[i] as (arg: unknown) => void)(args[i])
  } finally {
    if (i < tasks.length) {
      // Task i threw: what follows it still runs, next turn.
      tasks.splice(0, i + 1)
      args.splice(0, i + 1)
      setImmediate(runBatch)
    } else {
      tasks.length = 0
      args.length = 0
      scheduled = false
    }
  }
}

/** A socket whose writes so far this turn go out together at its end (uncorked once, with the batch). */
export function corkUntilTurnEnd(socket: { cork(): void; uncork(): void }): void {
  socket.cork()
  atTurnEnd(uncorkSocket, socket)
}

function uncorkSocket(socket: { uncork(): void }): void {
  socket.uncork()
}
