const UNIT_BYTES: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
}

/** `100MiB`, `10 MB`, `512KiB`, `1GiB`, `2048` (bytes) → bytes; null when not of that form. */
export function parseSizeBytes(value: string | number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : null
  const m = /^\s*(\d{1,12})\s*(b|kb|mb|gb|kib|mib|gib)?\s*$/i.exec(value)
  if (!m) return null
  const bytes = Number(m[1]) * (UNIT_BYTES[(m[2] ?? 'b').toLowerCase()] as number)
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null
}

/** Bytes as a person writes them: the largest binary unit that keeps a whole or one-decimal number (`64 KiB`, `1.5 MiB`, `100 MiB`). */
export function formatSizeBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (bytes >= size) {
      const n = bytes / size
      return `${Number.isInteger(n) ? n : n.toFixed(1)} ${unit}`
    }
  return `${bytes} bytes`
}
