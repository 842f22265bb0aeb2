import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** The process's RLIMIT_NOFILE: soft (what applies) and hard (the most the soft limit may be raised to). */
export interface FdLimit {
  readonly soft: number | null
  readonly hard: number | null
}

/** `Max open files  1024  524288  files` from /proc/self/limits; null where unknown or unlimited. */
export function parseNofile(limitsText: string): FdLimit {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText)
  const num = (s: string | undefined): number | null => (s !== undefined && /^\d+$/.test(s) ? Number(s) : null)
  return { soft: num(m?.[1]), hard: num(m?.[2]) }
}

export function readNofile(): FdLimit {
  try {
    return parseNofile(readFileSync('/proc/self/limits', 'utf8'))
  } catch {
    return { soft: null, hard: null }
  }
}

/**
 * Raise this process's soft RLIMIT_NOFILE to its hard limit, at start-up (synchronous: nothing is
 * serving yet). Node has no setrlimit; util-linux's prlimit sets another process's limits, and an
 * unprivileged process may raise its soft limit up to its hard one. Every proxied connection holds
 * two descriptors (client and upstream), and the common default soft limit (1024) runs out at a few
 * hundred. Returns the limits before and after; `after` equals `before` where nothing could be done.
 */
export function raiseNofile(): { readonly before: FdLimit; readonly after: FdLimit; readonly error: string | null } {
  const before = readNofile()
  if (before.soft === null || before.hard === null || before.soft >= before.hard)
    return { before, after: before, error: null }
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 5000,
  })
  const after = readNofile()
  const error =
    r.error !== undefined
      ? `prlimit could not run (${(r.error as NodeJS.ErrnoException).code ?? 'error'})`
      : r.status !== 0
        ? `prlimit failed: ${r.stderr.toString('utf8').trim().split('\n')[0] ?? ''}`
        : null
  return { before, after, error }
}
