/**
 * The fixed windows limits count in. PURE: `now` (ms) is always an argument.
 * Requests are counted per epoch minute and weighed as a sliding minute (this minute, plus the
 * previous one weighted by how much of it still lies within the last 60 s); bytes per UTC day.
 */
import { MS_PER_MINUTE } from './token-bucket.js'

/** Epoch minute: floor(ms / 60000). */
export function minuteOf(now: number): number {
  return Math.floor(now / MS_PER_MINUTE)
}

/** UTC day as yyyymmdd (20261125). */
export function utcDay(now: number): number {
  // Asked on every request's bytes: the last day's span is kept, so a Date is made once a day.
  if (now >= dayFrom && now < dayUntil) return dayValue
  const d = new Date(now)
  dayValue = d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate()
  dayFrom = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
  dayUntil = dayFrom + MS_PER_DAY
  return dayValue
}
const MS_PER_DAY = 86_400_000
let dayFrom = 0
let dayUntil = -1
let dayValue = 0

/** Seconds until the next UTC midnight, at least 1. */
export function secondsToUtcMidnight(now: number): number {
  const d = new Date(now)
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
  return Math.max(1, Math.ceil((next - now) / 1000))
}

/** How much of the previous minute still lies within the last 60 s at `now` (1 at the minute's start, 0 at its end). */
export function previousWeight(minute: number, now: number): number {
  return Math.max(0, Math.min(1, 1 - (now - minute * MS_PER_MINUTE) / MS_PER_MINUTE))
}
