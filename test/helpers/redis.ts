import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'

export interface RedisProc {
  readonly port: number
  readonly url: string
  start(): Promise<void>
  /** SIGKILL: an outage, not a clean shutdown. */
  kill(): Promise<void>
  /** SIGSTOP / SIGCONT: Redis keeps its connections but stops answering. */
  pause(): void
  resume(): void
}

/**
 * A real redis-server on a loopback port, no persistence, in the test's own
 * directory; killed at teardown. start() may be called again after kill() to
 * restart it on the same port (outage tests).
 */
export function redisServer(t: Test, port: number, extra: readonly string[] = []): RedisProc {
  const dir = t.testdir()
  let child: ChildProcess | null = null
  const kill = async (): Promise<void> => {
    const c = child
    child = null
    if (!c || c.exitCode !== null) return
    const exited = once(c, 'exit')
    c.kill('SIGKILL')
    await exited
  }
  t.teardown(async () => {
    child?.kill('SIGCONT')
    await kill()
  })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async start() {
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...extra,
      ]
      const c = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] })
      child = c
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server not ready in 10s: ${out}`)), 10_000)
        c.stdout?.on('data', (b: Buffer) => {
          out += b.toString('utf8')
          if (/Ready to accept connections/.test(out)) {
            clearTimeout(timer)
            resolve()
          }
        })
        c.once('exit', (code) => {
          clearTimeout(timer)
          reject(new Error(`redis-server exited ${code}: ${out}`))
        })
      })
    },
  }
}

// Polling lives in poll.ts; re-exported for tests written against this module.
export { waitFor } from './poll.js'
