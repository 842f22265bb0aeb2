import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { assertLoopbackOnly, writeConfig } from './config.js'
import { run, type RunResult } from './spawn.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const MAIN = join(ROOT, 'dist/cli/main.js')

/** A clean environment: no PORTCULLIS_* from the developer's shell leaks in. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) env[k] = v
  return { ...env, ...extra }
}

export interface CliOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Default: the repository root. */
  readonly cwd?: string
  /** Killed after this (default 30 s), which then fails the assertions on its code. */
  readonly timeoutMs?: number
}

/** The built CLI (`portcullis <args>`) run to completion in a clean environment plus `env`. */
export function runPortcullis(args: readonly string[], opts: CliOptions = {}): Promise<RunResult> {
  return run(process.execPath, [MAIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: cleanEnv(opts.env),
    timeoutMs: opts.timeoutMs ?? 30_000,
  })
}

export type LogLine = Record<string, unknown>

/** Where a PC_STARTED line says the instance listens. */
export function listeningAt(started: LogLine): { proxyPort: number; adminUrl: string } {
  return { proxyPort: Number(String(started.proxy).split(':').at(-1)), adminUrl: `http://${String(started.admin)}` }
}

export interface PortcullisProcess {
  readonly child: ChildProcess
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>
  /** JSON log lines so far. */
  parsed(): LogLine[]
  stderr(): string
  /** The first JSON log line matching pred; bounded by timeoutMs and by the process exiting. */
  waitLine(pred: (r: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>
}

/**
 * `portcullis start --config file` as a real process (the built binary), killed at teardown.
 * `wrap` runs it under another command (e.g. `['prlimit', '--nofile=64:64']`).
 */
export function spawnPortcullis(
  t: Test,
  configFile: string,
  env: NodeJS.ProcessEnv = {},
  wrap: readonly string[] = [],
): PortcullisProcess {
  assertLoopbackOnly(readFileSync(configFile, 'utf8'), configFile)
  const argv = [process.execPath, MAIN, 'start', '--config', configFile]
  const [command, ...args] = [...wrap, ...argv] as [string, ...string[]]
  const child = spawn(command, args, {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  })
  const lines: string[] = []
  let stderr = ''
  let partial = ''
  const waiters = new Set<() => void>()
  child.stdout?.on('data', (c: Buffer) => {
    const parts = (partial + c.toString('utf8')).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts.filter(Boolean))
    for (const w of [...waiters]) w()
  })
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
  const parsed = (): LogLine[] =>
    lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine]
      } catch {
        return []
      }
    })
  const waitLine = (pred: (r: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      const check = (): void => {
        const hit = parsed().find(pred)
        if (hit) {
          done()
          resolve(hit)
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no matching log line within ${timeoutMs} ms; stdout: ${lines.join('\n')}\nstderr: ${stderr}`))
      }, timeoutMs)
      waiters.add(check)
      check()
      void exited.then(() => {
        if (!waiters.has(check)) return
        check()
        if (!waiters.has(check)) return
        done()
        reject(new Error(`portcullis exited early; stdout: ${lines.join('\n')}\nstderr: ${stderr}`))
      })
    })
  return { child, exited, parsed, stderr: () => stderr, waitLine }
}

export interface Instance {
  readonly proc: PortcullisProcess
  /** Its config file. */
  readonly config: string
  readonly proxyPort: number
  readonly adminUrl: string
}

/**
 * `portcullis start` on `body` in a directory of its own (its config, CA and approvals file), ready
 * once it logs PC_STARTED and, with `sharedLimits`, PC_LIMITS_SHARED (its limits are on Redis).
 * Not t.testdir(): there is one per test and each call wipes it, so two instances would share it.
 */
export async function startInstance(
  t: Test,
  body: string,
  env: NodeJS.ProcessEnv,
  opts: { sharedLimits?: boolean } = {},
): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-instance-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = writeConfig(dir, body)
  const proc = spawnPortcullis(t, config, env)
  const started = await proc.waitLine((r) => r.code === 'PC_STARTED')
  if (opts.sharedLimits) await proc.waitLine((r) => r.code === 'PC_LIMITS_SHARED', 10_000)
  return { proc, config, ...listeningAt(started) }
}
