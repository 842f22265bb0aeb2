/**
 * Shared benchmark machinery: the origin and proxy child processes, raw
 * CONNECT/TLS clients, bounded load loops and /proc readings. Loopback only:
 * every socket here dials 127.0.0.1, and every loop stops at a request count
 * or a deadline, whichever comes first.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
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
import { tmpdir } from 'node:os'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { join, resolve } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

export const LOOPBACK = '127.0.0.1'
export const AGENT = 'bench'
export const TOKEN = 'bench-token-not-a-secret'
export const TOKEN_HASH = `sha256:${createHash('sha256').update(TOKEN).digest('hex')}`
export const PROXY_AUTH = `Basic ${Buffer.from(`${AGENT}:${TOKEN}`).toString('base64')}`
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef'

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Reject after ms unless p settles first; `onTimeout` cleans up (destroys sockets). */
export function within<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.()
      reject(new Error(`${what}: no answer within ${ms} ms`))
    }, ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

// ---------------------------------------------------------------- processes

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

/** Spawn `node --import tsx <script> ...args`, wait (bounded) for its one JSON line on stdout. */
async function spawnJsonChild<T>(
  script: string,
  args: readonly string[],
  what: string,
): Promise<{ info: T; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
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

/** The interception yardstick (bench/mitm-ref.ts); its version is pinned so runs compare. */
export const MITM_REF_VERSION = '1.1.0'

/**
 * http-mitm-proxy in its own process, installed into <outDir>/mitm-ref from the npm registry on
 * first use (it is no dependency of Portcullis). Throws when it cannot be installed or started; the
 * bench then leaves its cells empty and says why.
 */
export async function startMitmRef(
  outDir: string,
  originCaFile: string,
  names: readonly string[],
): Promise<{ port: number; pid: number; caPem: string; stop(): Promise<void> }> {
  const dir = join(outDir, 'mitm-ref')
  if (!existsSync(join(dir, 'node_modules', 'http-mitm-proxy', 'package.json'))) {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'package.json'), '{"name":"mitm-ref","private":true}\n')
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', `http-mitm-proxy@${MITM_REF_VERSION}`], {
      cwd: dir,
      stdio: 'ignore',
      timeout: 120_000,
    })
  }
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

export interface ProxyYamlOptions {
  readonly dir: string
  readonly httpPort: number
  readonly httpsPort: number
  readonly originCaFile: string
  /** Extra intercepted names pinned to loopback (new-host handshake scenario). */
  readonly extraMitmHosts?: readonly string[]
  readonly listenPort: number
  readonly adminPort: number
  /** telemetry.redis.url: the Redis sink, shared limits and approvals on. */
  readonly redisUrl?: string
}

/** SPEC §3 config: test names pinned to 127.0.0.1, loopback exempt, limits off (this measures the data path). */
export function proxyYaml(o: ProxyYamlOptions): string {
  const pins = ['tunnel.test', 'mitm.test', 'plain.test', ...(o.extraMitmHosts ?? [])]
    .map((h) => `    ${h}: ${LOOPBACK}`)
    .join('\n')
  return `# generated by bench/lib.ts
listen: { host: ${LOOPBACK}, port: ${o.listenPort} }
admin: { host: ${LOOPBACK}, port: ${o.adminPort} }
mode: enforce
tls:
  ca_cert: ${JSON.stringify(join(o.dir, 'portcullis-ca.pem'))}
  ca_key: ${JSON.stringify(join(o.dir, 'portcullis-ca-key.pem'))}
  intercept: auto
upstream:
  ports: [${o.httpPort}, ${o.httpsPort}]
  resolve:
${pins}
  allow_private: [127.0.0.1/32]
  ca_file: ${JSON.stringify(o.originCaFile)}
  connect_timeout_ms: 5000
  header_timeout_ms: 10000
  idle_timeout_ms: 120000
telemetry:
  log: { level: info }
  memory: { size: 10000 }
${o.redisUrl ? `  redis: { url: ${JSON.stringify(o.redisUrl)}, stream: "portcullis:bench", maxlen: 1000000 }\n` : ''}limits: { requests_per_minute: null, concurrent_connections: null, bytes_per_day: null }
approvals: { file: ${JSON.stringify(join(o.dir, 'approvals.yaml'))} }
groups:
  bench:
    allow:
      - host: tunnel.test
      - host: plain.test
      - host: mitm.test
        paths: ["/**"]
      - host: "*.mitm.test"
        paths: ["/**"]
agents:
  - id: ${AGENT}
    token: ${TOKEN_HASH}
    groups: [bench]
`
}

/** Free loopback ports, picked by listening on port 0 (the proxy's log may be silenced, so its ports are chosen here). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createNetServer().listen(0, LOOPBACK))
  await Promise.all(servers.map((s) => once(s, 'listening')))
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  return ports
}

async function accepts(port: number): Promise<boolean> {
  const s = netConnect(port, LOOPBACK)
  try {
    await Promise.race([once(s, 'connect'), sleep(500).then(() => Promise.reject(new Error('timeout')))])
    return true
  } catch {
    return false
  } finally {
    s.destroy()
  }
}

/**
 * `node dist/cli/main.js start --config <yaml>`: the real program, logging on,
 * stdout+stderr to <dir>/<name>.log, on the ports the yaml names; ready when
 * both accept connections. Extra node flags (e.g. --cpu-prof) from BENCH_PROXY_NODE_ARGS;
 * BENCH_PROXY_MAIN runs another build (e.g. a patched copy of dist/) to try a fix.
 */
export async function startProxy(
  root: string,
  dir: string,
  name: string,
  yaml: string,
  ports: { listenPort: number; adminPort: number },
): Promise<ProxyProc> {
  const configFile = join(dir, `${name}.yaml`)
  writeFileSync(configFile, yaml)
  const logFile = join(dir, `${name}.log`)
  const fd = openSync(logFile, 'w')
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean)
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
    if ((await accepts(ports.listenPort)) && (await accepts(ports.adminPort))) {
      return {
        port: ports.listenPort,
        adminPort: ports.adminPort,
        pid: child.pid ?? -1,
        logFile,
        caCertFile: join(dir, 'portcullis-ca.pem'),
        stop: () => stopChild(child, 5000),
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`proxy did not listen within 30 s; see ${logFile}`)
    }
    await sleep(100)
  }
}

// ---------------------------------------------------------------- /proc

/** Resident set size of pid, KiB (VmRSS). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : NaN
}

/** User+system CPU time of pid so far, ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[11], fields[12] are utime, stime (fields 14, 15 of proc(5)) in clock ticks (USER_HZ = 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10
}

// ---------------------------------------------------------------- raw clients

/** Resolve with the first `\r\n\r\n`-terminated head (and anything after it) read from socket. */
function readHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const onData = (c: Buffer): void => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      const i = buf.indexOf('\r\n\r\n')
      if (i >= 0) {
        cleanup()
        socket.pause()
        resolve({ head: buf.subarray(0, i).toString('latin1'), rest: buf.subarray(i + 4) })
      }
    }
    const onEnd = (): void => {
      cleanup()
      reject(new Error('closed before a response head'))
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(e)
    }
    const cleanup = (): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onError)
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onError)
  })
}

/** TCP to the proxy, CONNECT authority, 200 read. The returned socket is paused, ready for TLS. */
export async function openTunnel(proxyPort: number, authority: string, timeoutMs = 10_000): Promise<Socket> {
  const socket = netConnect(proxyPort, LOOPBACK)
  socket.setNoDelay(true)
  return within(
    (async () => {
      await once(socket, 'connect')
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${PROXY_AUTH}\r\n\r\n`)
      const { head } = await readHead(socket)
      if (!/^HTTP\/1\.1 200 /.test(head)) throw new Error(`CONNECT ${authority}: ${head.split('\r\n')[0] ?? ''}`)
      return socket
    })(),
    timeoutMs,
    `CONNECT ${authority}`,
    () => socket.destroy(),
  )
}

export interface TlsTarget {
  readonly servername: string
  readonly ca: string
}

/** TLS client handshake over `socket` (a tunnel) or to 127.0.0.1:port (direct). */
export async function tlsHandshake(via: Socket | number, t: TlsTarget, timeoutMs = 10_000): Promise<TLSSocket> {
  const tls =
    typeof via === 'number'
      ? tlsConnect({ host: LOOPBACK, port: via, servername: t.servername, ca: t.ca })
      : tlsConnect({ socket: via, servername: t.servername, ca: t.ca })
  tls.setNoDelay?.(true)
  return within(
    (async () => {
      await once(tls, 'secureConnect')
      return tls
    })(),
    timeoutMs,
    `TLS ${t.servername}`,
    () => tls.destroy(),
  )
}

/** One `GET path` with Connection: close; resolves with the body length when the server closes. */
export async function getAndClose(sock: TLSSocket, host: string, path = '/', timeoutMs = 10_000): Promise<number> {
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  return within(
    new Promise<number>((resolve, reject) => {
      let n = 0
      sock.on('data', (c: Buffer) => (n += c.length))
      sock.once('end', () => resolve(n))
      sock.once('error', reject)
    }),
    timeoutMs,
    `GET ${host}${path}`,
    () => sock.destroy(),
  ).finally(() => sock.destroy())
}

/** GET /bulk?bytes=n on an open TLS socket; resolves with body bytes and seconds from request to last byte. */
export async function bulkGet(
  sock: TLSSocket,
  host: string,
  n: number,
  timeoutMs: number,
): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint()
  sock.write(`GET /bulk?bytes=${n} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  const { rest } = await readHead(sock)
  sock.resume()
  return within(
    new Promise<{ bytes: number; seconds: number }>((resolve, reject) => {
      let got = rest.length
      const done = (): void => resolve({ bytes: got, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })
      if (got >= n) return done()
      const onData = (c: Buffer): void => {
        got += c.length
        if (got >= n) {
          sock.off('data', onData)
          done()
        }
      }
      sock.on('data', onData)
      sock.once('end', () => (got >= n ? done() : reject(new Error(`bulk: ended after ${got} of ${n} bytes`))))
      sock.once('error', reject)
    }),
    timeoutMs,
    'bulk GET',
    () => sock.destroy(),
  ).finally(() => sock.destroy())
}

// ---------------------------------------------------------------- load loops

export interface LoadResult {
  readonly ops: number
  readonly errors: number
  readonly seconds: number
  readonly perSecond: number
  /** Per-op latency, ms, sorted. */
  readonly latencies: Float64Array
  readonly firstError: string | null
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

/**
 * Run `op` from `concurrency` workers until `maxOps` ops have started or
 * `maxMs` has passed (whichever first); stop early after 50 errors.
 */
export async function loadLoop(
  op: () => Promise<unknown>,
  o: { concurrency: number; maxOps: number; maxMs: number },
): Promise<LoadResult> {
  const lat = new Float64Array(o.maxOps)
  let started = 0
  let done = 0
  let errors = 0
  let firstError: string | null = null
  const t0 = performance.now()
  const deadline = t0 + o.maxMs
  const worker = async (): Promise<void> => {
    while (started < o.maxOps && performance.now() < deadline && errors < 50) {
      started++
      const s = performance.now()
      try {
        await op()
        lat[done++] = performance.now() - s
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? err.message : String(err)
      }
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, worker))
  const seconds = (performance.now() - t0) / 1000
  const latencies = lat.slice(0, done).sort()
  return { ops: done, errors, seconds, perSecond: done / seconds, latencies, firstError }
}

/** A throwaway redis-server on a free loopback port (no persistence). */
export async function startRedis(): Promise<{ url: string; stop(): void }> {
  const [port = 0] = await freePorts(1)
  const dir = mkdtempSync(join(tmpdir(), 'pc-bench-redis-'))
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server not ready in 10s')), 10_000)
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString('utf8')
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
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
    const up = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, LOOPBACK, () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (up) break
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
