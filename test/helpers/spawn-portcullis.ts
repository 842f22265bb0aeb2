import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const MAIN = join(ROOT, 'dist/cli/main.js')

/** A clean environment: no PORTCULLIS_* from the developer's shell leaks in. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) env[k] = v
  return { ...env, ...extra }
}

/** A config whose files all live in `dir`, on ephemeral loopback ports; returns its path. */
export function writeConfig(dir: string, body: string): string {
  const file = join(dir, 'portcullis.yaml')
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
tls: { ca_cert: ${JSON.stringify(join(dir, 'ca.pem'))}, ca_key: ${JSON.stringify(join(dir, 'ca-key.pem'))} }
approvals: { file: ${JSON.stringify(join(dir, 'approvals.yaml'))} }
${body}
`,
  )
  return file
}

export type LogLine = Record<string, unknown>

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
