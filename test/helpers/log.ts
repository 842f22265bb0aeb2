import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

export interface CapturedLog {
  readonly log: Logger
  readonly lines: Array<Record<string, unknown>>
  /** How many records carry this `code`. */
  codes(code: string): number
}

/** A pino logger whose records land in an array, for asserting on log codes. */
export function capturedLog(): CapturedLog {
  const lines: Array<Record<string, unknown>> = []
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  return { log: pino({ level: 'debug' }, dest), lines, codes: (code) => lines.filter((l) => l.code === code).length }
}
