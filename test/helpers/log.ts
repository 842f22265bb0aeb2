import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

/** The one log-capture helper: a destination whose lines (pino writes one JSON object per line) land in memory. */
export interface CapturedLines {
  readonly dest: Writable
  /** The raw lines so far. */
  raw(): string[]
  /** The lines so far, parsed. */
  lines(): Array<Record<string, unknown>>
}

export function captureLines(): CapturedLines {
  const raw: string[] = []
  let partial = ''
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const parts = (partial + chunk.toString('utf8')).split('\n')
      partial = parts.pop() ?? ''
      raw.push(...parts.filter(Boolean))
      cb()
    },
  })
  return { dest, raw: () => [...raw], lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

export interface CapturedLog {
  readonly log: Logger
  /** The records so far. */
  readonly lines: ReadonlyArray<Record<string, unknown>>
  /** How many records carry this `code`. */
  codes(code: string): number
}

/** A pino logger (level debug) whose records are captured, for asserting on log codes. */
export function capturedLog(): CapturedLog {
  const captured = captureLines()
  return {
    log: pino({ level: 'debug' }, captured.dest),
    get lines() {
      return captured.lines()
    },
    codes: (code) => captured.lines().filter((l) => l.code === code).length,
  }
}
