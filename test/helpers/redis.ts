import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, type RedisOptions } from 'ioredis'
import type { Test } from 'tap'
import { waitFor } from './poll.js'
import { freePort } from './ports.js'

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
 * redis-server on 127.0.0.1:port, no persistence, its files in `dir`; `ready` when it accepts
 * connections (bounded: 10 s; on failure the process is killed). Shared by the tests (redisServer
 * below) and the bench (bench/lib/processes.ts).
 */
export function spawnRedisServer(
  port: number,
  dir: string,
  extra: readonly string[] = [],
): { child: ChildProcess; ready: Promise<void> } {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const child = spawn('redis-server', [...args, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server not ready in 10s: ${out}`)), 10_000)
    const onData = (b: Buffer): void => {
      out += b.toString('utf8')
      if (!/Ready to accept connections/.test(out)) return
      clearTimeout(timer)
      // Its log is still read (and dropped), so a full pipe never blocks it.
      child.stdout?.off('data', onData).resume()
      resolve()
    }
    child.stdout?.on('data', onData)
    // 'close', not 'exit': by then its output has all been read, so the error says why (a port in use).
    child.once('close', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited ${code}: ${out}`))
    })
  })
  ready.catch(() => child.kill('SIGKILL'))
  return { child, ready }
}

/**
 * A real redis-server on a loopback port, no persistence, in a directory of its own (not
 * t.testdir(): there is one per test, and every call wipes it); killed at teardown. start() may be
 * called again after kill() to restart it on the same port (outage tests).
 */
export function redisServer(t: Test, port: number, extra: readonly string[] = []): RedisProc {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'))
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
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async start() {
      const spawned = spawnRedisServer(port, dir, extra)
      child = spawned.child
      await spawned.ready
    },
  }
}

/**
 * redisServer on a free port, started. The port is released between picking and binding, so another
 * test's server may take it meanwhile: then another port is tried.
 */
export async function startRedis(t: Test, extra: readonly string[] = []): Promise<RedisProc> {
  for (let attempt = 1; ; attempt++) {
    const redis = redisServer(t, await freePort(), extra)
    try {
      await redis.start()
      return redis
    } catch (err) {
      if (attempt === 3 || !/address already in use/i.test(String(err))) throw err
    }
  }
}

/** A client of `url` for checking what the proxy wrote (errors ignored: outage tests), disconnected at teardown. */
export function redisClient(t: Test, url: string, opts: RedisOptions = { maxRetriesPerRequest: 1 }): Redis {
  const client = new Redis(url, opts)
  client.on('error', () => undefined)
  t.teardown(() => client.disconnect())
  return client
}

/**
 * A one-node Redis Cluster (every slot on it), started and serving; with a client of it.
 * URLs for the proxy are `redis+cluster://127.0.0.1:<redis.port>`.
 */
export async function startRedisCluster(t: Test): Promise<{ redis: RedisProc; client: Redis }> {
  const redis = await startRedis(t, [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-announce-ip',
    '127.0.0.1',
  ])
  const client = redisClient(t, redis.url)
  await client.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
  await waitFor('cluster ok', async () => /cluster_state:ok/.test(String(await client.call('CLUSTER', 'INFO'))))
  return { redis, client }
}

// Polling lives in poll.ts; re-exported for tests written against this module.
export { waitFor }
