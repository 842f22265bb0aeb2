/**
 * Token-bucket arithmetic. PURE: no clock, no I/O; `now` (ms) is always an argument.
 *
 * A bucket for `requests_per_minute = rpm` holds at most `rpm` tokens (a burst of one minute's
 * budget) and refills continuously at `rpm / 60000` tokens per ms. Functions mutate the bucket
 * object they are given (it is per-agent state owned by the limiter); they never read the clock.
 */

export const MS_PER_MINUTE = 60_000

export interface TokenBucket {
  /** Maximum tokens (= requests per minute). */
  capacity: number
  /** Tokens available at `updatedMs` (fractional). */
  tokens: number
  /** Time of the last refill, ms. */
  updatedMs: number
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterS: number }

const OK: TakeResult = Object.freeze({ ok: true })

/** A full bucket for `perMinute` requests per minute. */
export function createBucket(perMinute: number, now: number): TokenBucket {
  const capacity = Math.max(0, perMinute)
  return { capacity, tokens: capacity, updatedMs: now }
}

function ratePerMs(b: TokenBucket): number {
  return b.capacity / MS_PER_MINUTE
}

/** Add the tokens earned since `updatedMs`. A clock that goes backwards earns nothing (and moves nothing). */
export function refill(b: TokenBucket, now: number): void {
  if (now <= b.updatedMs) return
  b.tokens = Math.min(b.capacity, b.tokens + (now - b.updatedMs) * ratePerMs(b))
  b.updatedMs = now
}

/** Seconds until `n` tokens are available (at least 1, so a Retry-After is never 0). */
export function secondsUntil(b: TokenBucket, n: number): number {
  if (n > b.capacity || b.capacity === 0) return Math.ceil(MS_PER_MINUTE / 1000)
  const missing = n - b.tokens
  if (missing <= 0) return 1
  return Math.max(1, Math.ceil(missing / ratePerMs(b) / 1000))
}

/** Take `n` tokens at `now`, or say how long to wait. A denied take consumes nothing. */
export function take(b: TokenBucket, now: number, n = 1): TakeResult {
  refill(b, now)
  if (b.tokens >= n) {
    b.tokens -= n
    return OK
  }
  return { ok: false, retryAfterS: secondsUntil(b, n) }
}

/**
 * Change the capacity (config reload) without resetting usage: what was used in the current
 * burst stays used, so `capacity - tokens` is preserved (clamped to [0, newCapacity]).
 * Raising 60 → 600 after spending 60 leaves 540; lowering 600 → 60 after spending 100 leaves 0.
 */
export function resize(b: TokenBucket, perMinute: number, now: number): void {
  const capacity = Math.max(0, perMinute)
  if (capacity === b.capacity) return
  refill(b, now)
  const used = b.capacity - b.tokens
  b.capacity = capacity
  b.tokens = Math.min(capacity, Math.max(0, capacity - used))
}

/** Give back `n` tokens taken for something that did not count (never above capacity). */
export function refund(b: TokenBucket, n = 1): void {
  b.tokens = Math.min(b.capacity, b.tokens + n)
}
