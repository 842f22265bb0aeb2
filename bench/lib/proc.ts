/**
 * /proc readings for the bench: CPU time and resident memory of a proxy, counted over its whole
 * process tree (a cluster primary and its workers; Squid and any helper it forks), so every proxy's
 * CPU per operation is measured the same way.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { descendants, parseProcStat, parseVmRssKiB, type ProcStat } from './stats.js'

function readStat(pid: number | string): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return null // gone between the listing and the read
  }
}

function allStats(): ProcStat[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      const s = readStat(d)
      return s ? [s] : []
    })
}

/** pid and its descendants now. */
export function processTree(pid: number): number[] {
  return descendants(pid, allStats())
}

/** User+system CPU time of pid and its descendants so far, ms. */
export function cpuMs(pid: number): number {
  const stats = allStats()
  const byPid = new Map(stats.map((s) => [s.pid, s]))
  return descendants(pid, stats).reduce((ms, p) => ms + (byPid.get(p)?.cpuMs ?? 0), 0)
}

/** Resident set size of pid alone, KiB (VmRSS). */
export function rssKiB(pid: number): number {
  return parseVmRssKiB(readFileSync(`/proc/${pid}/status`, 'utf8'))
}
