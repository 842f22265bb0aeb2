import { setTimeout as delay } from 'node:timers/promises'

/**
 * The one polling helper. Tests wait on events where they can (`once(server, 'listening')`); where
 * they cannot (a record reaching the ring, Redis catching up), they poll here, bounded in time and
 * in rounds.
 */
const MAX_ROUNDS = 10_000

/** Poll until pred() is true or the deadline passes; the last answer of pred(). */
export async function until(pred: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < MAX_ROUNDS && Date.now() < deadline; i++) {
    if (await pred()) return true
    await delay(stepMs)
  }
  return pred()
}

/** Poll until pred() is true; throws `timed out waiting for <what>` at the deadline. */
export async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  if (!(await until(pred, timeoutMs, 20))) throw new Error(`timed out waiting for ${what}`)
}

/**
 * Limits count in fixed one-minute windows: when the current minute is more than `latestMs` in,
 * wait for the next one (a second into it), so what a test spends stays in one window.
 */
export async function clearOfMinuteEnd(latestMs = 45_000): Promise<void> {
  const intoMinute = Date.now() % 60_000
  if (intoMinute > latestMs) await delay(61_000 - intoMinute)
}
