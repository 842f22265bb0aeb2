const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `500ms`, `45s`, `30m`, `2h`, `7d`, `1w` → milliseconds; null when not of that form. */
export function parseDurationMs(text: string): number | null {
  const m = /^\s*(\d{1,9})\s*(ms|s|m|h|d|w)\s*$/i.exec(text)
  if (!m) return null
  return Number(m[1]) * (UNIT_MS[(m[2] as string).toLowerCase()] as number)
}
