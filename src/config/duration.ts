const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const WHOLE = /^(?:\d{1,9} *(?:ms|s|m|h|d|w))+$/i
const PART = /(\d{1,9}) *(ms|s|m|h|d|w)/gi

/**
 * `500ms`, `45s`, `30m`, `2h`, `7d`, `1w`, and sums of them written together as Go and systemd
 * operators do (`1h30m`, `2d12h`) → milliseconds; null when not of that form. Spaces are allowed
 * around the whole and before a unit (`30 m`), not between parts (`1h 30m` is more likely a slip).
 */
export function parseDurationMs(text: string): number | null {
  const t = text.trim()
  if (t.length > 64 || !WHOLE.test(t)) return null
  let ms = 0
  for (const m of t.matchAll(PART)) ms += Number(m[1]) * (UNIT_MS[(m[2] as string).toLowerCase()] as number)
  return ms
}
