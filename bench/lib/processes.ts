/**
 * The processes a bench run compares, each started on free loopback ports and stopped at the end:
 * the origin (bench/origin.ts), the real Portcullis program, a bare Node proxy (the floor), Squid
 * (the yardstick the targets were set against), http-mitm-proxy (the interception yardstick) and a
 * throwaway redis-server. Every start is bounded in time.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { assertLoopbackOnly, writeConfig } from '../../test/helpers/config.js'
import { freePorts } from '../../test/helpers/ports.js'
import { spawnRedisServer } from '../../test/helpers/redis.js'
import { accepts, sleep, within } from './clients.js'
import { ADMIN_TOKEN, LOOPBACK, proxyYaml, type ProxyYamlOptions } from './config.js'

const BENCH_DIR = resolve(import.meta.dirname, '..')

export interface OriginProc {
  readonly httpPort: number
  readonly httpsPort: number
  readonly caFile: string
  readonly caPem: string
  readonly pid: number
  stop(): Promise<void>
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * Spawn `node --import tsx <script> ...args`, wait (bounded) for its one JSON line on stdout.
 * BENCH_CHILD_NODE_ARGS adds node flags to these helpers (the origin, the bare and floor proxies), e.g.
 * "--cpu-prof --cpu-prof-dir=bench/out/prof" to profile the floor beside the proxy.
 */
async function spawnJsonChild<T>(
  script: string,
  args: readonly string[],
  what: string,
): Promise<{ info: T; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [...(process.env.BENCH_CHILD_NODE_ARGS?.split(' ') ?? []), '--import', 'tsx', join(BENCH_DIR, script), ...args],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  let out = ''
  const info = await within(
    new Promise<T>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${what} exited early (${code})`)))
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString('utf8')
        const nl = out.indexOf('\n')
        if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as T)
      })
    }),
    30_000,
    `${what} start`,
    () => child.kill('SIGKILL'),
  )
  return { info, stop: () => stopChild(child, 3000) }
}

export async function startOrigin(outDir: string, names: readonly string[]): Promise<OriginProc> {
  const { info, stop } = await spawnJsonChild<{ httpPort: number; httpsPort: number; caFile: string; pid: number }>(
    'origin.ts',
    [outDir, ...names],
    'origin',
  )
  return { ...info, caPem: readFileSync(info.caFile, 'utf8'), stop }
}

/** bench/bare-proxy.ts: the floor a minimal Node proxy reaches on this machine (with an origin CA file, it also intercepts mitm.test). */
export async function startBareProxy(
  originCaFile?: string,
): Promise<{ port: number; pid: number; caPem: string | null; stop(): Promise<void> }> {
  const { info, stop } = await spawnJsonChild<{ port: number; pid: number; caFile: string | null }>(
    'bare-proxy.ts',
    originCaFile ? [originCaFile] : [],
    'bare proxy',
  )
  return { port: info.port, pid: info.pid, caPem: info.caFile ? readFileSync(info.caFile, 'utf8') : null, stop }
}

/** bench/floor-proxy.ts: a plain-GET forwarder with the proxy's own upstream client and nothing else (the d row's floor). */
export async function startFloorProxy(
  front: 'net' | 'http',
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const { info, stop } = await spawnJsonChild<{ port: number; pid: number }>('floor-proxy.ts', [front], 'floor proxy')
  return { port: info.port, pid: info.pid, stop }
}

/** The interception yardstick (bench/mitm-ref.ts): the exact devDependency version, so runs compare. */
export const MITM_REF_VERSION = (createRequire(import.meta.url)('http-mitm-proxy/package.json') as { version: string })
  .version

/** http-mitm-proxy (a pinned devDependency) in its own process; its CA is made in <outDir>/mitm-ref. */
export async function startMitmRef(
  outDir: string,
  originCaFile: string,
  names: readonly string[],
): Promise<{ port: number; pid: number; caPem: string; stop(): Promise<void> }> {
  const dir = join(outDir, 'mitm-ref')
  mkdirSync(dir, { recursive: true })
  const { info, stop } = await spawnJsonChild<{ port: number; pid: number; caFile: string }>(
    'mitm-ref.ts',
    [dir, originCaFile, ...names],
    'http-mitm-proxy',
  )
  return { port: info.port, pid: info.pid, caPem: readFileSync(info.caFile, 'utf8'), stop }
}

export interface ProxyProc {
  readonly port: number
  readonly adminPort: number
  readonly pid: number
  readonly logFile: string
  readonly caCertFile: string
  stop(): Promise<void>
}

/**
 * `node dist/cli/main.js start --config <dir>/<name>.yaml`: the real program with the bench config
 * (proxyYaml) on two free loopback ports, logging on, stdout+stderr to <dir>/<name>.log; its CA in
 * <dir> (proxies started in one directory share it). Ready when both ports accept connections (with
 * workers, when the primary logs PC_WORKERS_STARTED). Extra node flags (e.g. --cpu-prof) from
 * BENCH_PROXY_NODE_ARGS; BENCH_PROXY_MAIN runs another build (e.g. a patched copy of dist/) to try a fix.
 */
export async function startProxy(
  root: string,
  dir: string,
  name: string,
  o: ProxyYamlOptions,
  extraNodeArgs: readonly string[] = [],
): Promise<ProxyProc> {
  const [listenPort = 0, adminPort = 0] = await freePorts(2)
  const yaml = proxyYaml(o)
  assertLoopbackOnly(yaml, `bench ${name}`)
  const configFile = writeConfig(dir, yaml, { file: `${name}.yaml`, listenPort, adminPort })
  const logFile = join(dir, `${name}.log`)
  const fd = openSync(logFile, 'w')
  const nodeArgs = [...(process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean), ...extraNodeArgs]
  const main = process.env.BENCH_PROXY_MAIN ? resolve(process.env.BENCH_PROXY_MAIN) : join(root, 'dist/cli/main.js')
  const child = spawn(process.execPath, [...nodeArgs, main, 'start', '--config', configFile], {
    cwd: dir,
    stdio: ['ignore', fd, fd],
    env: {
      ...process.env,
      PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
      PORTCULLIS_CONFIG: configFile,
      ...(process.env.BENCH_LOG_LEVEL ? { PORTCULLIS_LOG_LEVEL: process.env.BENCH_LOG_LEVEL } : {}),
    },
  })
  closeSync(fd)
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(
        `proxy exited (${child.exitCode}); see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(0, 2000)}`,
      )
    // With workers, the listeners open with the first worker; ready is when the primary says all are.
    const ready =
      (o.workers ?? 1) > 1
        ? readFileSync(logFile, 'utf8').includes('"PC_WORKERS_STARTED"')
        : (await accepts(listenPort)) && (await accepts(adminPort))
    if (ready) {
      return {
        port: listenPort,
        adminPort,
        pid: child.pid ?? -1,
        logFile,
        caCertFile: join(dir, 'ca.pem'),
        // A profiled proxy writes its profile only once the drain (8 s) is over.
        stop: () => stopChild(child, nodeArgs.some((a) => a.startsWith('--cpu-prof')) ? 15_000 : 5000),
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`proxy did not listen within 30 s; see ${logFile}`)
    }
    await sleep(100)
  }
}

/** A throwaway redis-server on a free loopback port (no persistence): the tests' own (test/helpers/redis.ts). */
export async function startRedis(): Promise<{ url: string; stop(): void }> {
  const [port = 0] = await freePorts(1)
  const dir = mkdtempSync(join(tmpdir(), 'pc-bench-redis-'))
  const { child, ready } = spawnRedisServer(port, dir)
  try {
    await ready
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Where Debian puts Squid; null when it is not installed (the Squid column then stays empty). */
export function squidBinary(): string | null {
  for (const p of ['/usr/sbin/squid', '/usr/bin/squid']) if (existsSync(p)) return p
  return null
}

/**
 * Squid (Debian's 5.7, the yardstick the targets were set against), measured in the same run as
 * Portcullis: one process (-N), access log on, no cache, no auth, test names from its own hosts
 * file (only 127.0.0.1 is ever dialled), CONNECT to the origin's TLS port only.
 */
export async function startSquid(
  binary: string,
  names: readonly string[],
  httpPort: number,
  httpsPort: number,
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const [port = 0] = await freePorts(1)
  const dir = mkdtempSync(join(tmpdir(), 'pc-bench-squid-'))
  chmodSync(dir, 0o777) // Squid drops root for its effective user, which must write the logs here.
  writeFileSync(join(dir, 'hosts'), `127.0.0.1 ${names.join(' ')}\n`)
  writeFileSync(
    join(dir, 'squid.conf'),
    `http_port ${LOOPBACK}:${port}
acl loopback src 127.0.0.0/8
acl origin_ports port ${httpPort} ${httpsPort}
acl tls_port port ${httpsPort}
acl CONNECT method CONNECT
http_access deny !origin_ports
http_access deny CONNECT !tls_port
http_access allow loopback
http_access deny all
cache deny all
cache_mem 8 MB
hosts_file ${join(dir, 'hosts')}
dns_nameservers 127.0.0.1
access_log stdio:${join(dir, 'access.log')}
cache_log ${join(dir, 'cache.log')}
pid_filename none
coredump_dir ${dir}
visible_hostname portcullis-bench
shutdown_lifetime 0 seconds
pinger_enable off
`,
  )
  const child = spawn(binary, ['-N', '-f', join(dir, 'squid.conf')], { stdio: ['ignore', 'ignore', 'inherit'] })
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`squid exited (${child.exitCode}); see ${join(dir, 'cache.log')}`)
    if (await accepts(port)) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error('squid did not listen within 15 s')
    }
    await sleep(100)
  }
  return {
    port,
    pid: child.pid ?? 0,
    async stop() {
      await stopChild(child, 3000)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
