import type { Bus, Sink } from './bus.js'
import type { DecisionRecord, TelemetryRecord } from './events.js'

/**
 * Evidence that one client cannot flush away: a flood of the same denial from one source (10,500
 * in 420 ms were measured, each a record) would push every other agent's denials out of the ring
 * the page, `portcullis blocked` and approvals read, and fill the log and Redis. Of identical
 * denials (same source address, agent, claimed or not, reason, method, host, port and path), the
 * first `perSecond` of each second are recorded one by one; the rest of that second are folded into
 * one record: the last of them, with `repeats` saying how many others it stands for. Metrics still
 * count every decision (`countAll` sees everything). Only identical ones fold: a key without the
 * target let an agent bury one request (an exfiltration, a stolen token tried) in a second of
 * decoys, its record replaced by theirs. Allows, close records and audit mode's would-be denials
 * (the request went out) are never folded.
 */
export interface DenialFolder extends Bus {
  /** Denials folded into another's repeat count so far (for metrics). */
  readonly folded: number
  /** Write out the folds of seconds that are over (also run by a timer), or all of them (`all`: at close). */
  flush(all?: boolean): void
  close(): void
}

export interface DenialFoldOptions {
  readonly perSecond: number
  readonly now?: () => number
}

interface Fold {
  second: number
  count: number
  folded: number
  last: DecisionRecord | null
}

export type FoldedRecord = DecisionRecord & { readonly repeats: number }

function keyOf(r: DecisionRecord): string {
  const colon = r.src.lastIndexOf(':')
  const ip = colon > 0 ? r.src.slice(0, colon) : r.src
  return `${ip}\0${r.agent ?? ''}\0${r.reason}\0${r.method}\0${r.host}\0${r.port}\0${r.path ?? ''}`
}

export function createDenialFolder(records: Bus, countAll: Sink, opts: DenialFoldOptions): DenialFolder {
  const now = opts.now ?? Date.now
  const folds = new Map<string, Fold>()
  let folded = 0
  let timer: NodeJS.Timeout | null = null

  const emit = (f: Fold): void => {
    if (f.last === null) return
    const summary: FoldedRecord = { ...f.last, repeats: f.folded - 1 }
    folded += f.folded - 1
    f.last = null
    records.publish(summary)
  }
  const flush = (all = false): void => {
    const second = Math.floor(now() / 1000)
    for (const [key, f] of folds) {
      if (!all && f.second === second) continue
      emit(f)
      folds.delete(key)
    }
    if (folds.size === 0 && timer !== null) {
      clearInterval(timer)
      timer = null
    }
  }
  const publish = (record: TelemetryRecord): void => {
    try {
      countAll.write(record)
    } catch {
      // Metrics are a sink like any other: a failure there must not stop the record.
    }
    if (record.event !== 'decision' || record.decision !== 'deny' || record.would_deny) return records.publish(record)
    const key = keyOf(record)
    const second = Math.floor(now() / 1000)
    let f = folds.get(key)
    if (f !== undefined && f.second !== second) {
      emit(f)
      f = undefined
    }
    if (f === undefined) {
      f = { second, count: 0, folded: 0, last: null }
      folds.set(key, f)
      timer ??= setInterval(() => flush(), 1000).unref()
    }
    f.count++
    if (f.count <= opts.perSecond) return records.publish(record)
    f.folded++
    f.last = record
  }
  return {
    publish,
    subscribe: (sink) => records.subscribe(sink),
    get sinkFailures() {
      return records.sinkFailures
    },
    get folded() {
      return folded
    },
    flush,
    close() {
      flush(true)
      if (timer !== null) clearInterval(timer)
      timer = null
    },
  }
}
