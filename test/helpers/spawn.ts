import { spawn } from 'node:child_process'
import { once } from 'node:events'

/**
 * The one spawn helper: run a program to completion, bounded (killed with SIGKILL after
 * timeoutMs, which shows as `signal`), with its output collected. Never throws on a non-zero exit.
 * (A long-running `portcullis start` is spawn-portcullis.ts.)
 */
export interface RunResult {
  /** The exit code; null when killed by a signal. */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** stdout and stderr together, in the order they arrived. */
  readonly output: string
  readonly ms: number
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  readonly timeoutMs?: number
}

export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now()
  const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  const both: Buffer[] = []
  child.stdout.on('data', (c: Buffer) => (out.push(c), both.push(c)))
  child.stderr.on('data', (c: Buffer) => (err.push(c), both.push(c)))
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return {
    code,
    signal,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    output: Buffer.concat(both).toString('utf8'),
    ms: Date.now() - started,
  }
}
