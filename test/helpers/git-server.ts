import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { run } from './spawn.js'
import { createTestCa, type TestCa } from './test-ca.js'
import { curl, type CurlResult } from './clients.js'
import { TOKEN } from './config.js'

/**
 * A loopback HTTPS smart-HTTP git origin: `git http-backend` behind a tiny
 * Node CGI shim, with bare repos (one commit each, push enabled) under a temp
 * dir. Loopback only; git runs with no system/global config.
 */

export interface GitSeen {
  readonly method: string
  readonly url: string
  readonly status: number
  readonly proxyAuthorization: string | undefined
  readonly authorization: string | undefined
}

export interface GitServer {
  readonly port: number
  readonly root: string
  readonly ca: TestCa
  readonly seen: GitSeen[]
  /** A temp HOME and the env every git command in a test should run with. */
  readonly env: NodeJS.ProcessEnv
  /** `git rev-parse <ref>` in a bare repo under root (e.g. 'acme/widgets.git'). */
  revParse(repo: string, ref?: string): string
}

/** Env for running git hermetically: no system/global config, no prompts, temp HOME. */
export function gitEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const k of ['PATH', 'LANG', 'LC_ALL', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k]
  return {
    ...env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.invalid',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.invalid',
    ...extra,
  }
}

export interface GitResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Run git with a bounded timeout (killed after timeoutMs). Never throws on a non-zero exit. */
export async function runGit(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<GitResult> {
  const r = await run('git', args, { env, cwd: opts.cwd, timeoutMs: opts.timeoutMs ?? 30_000 })
  return { code: r.code ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr }
}

function gitSync(args: readonly string[], env: NodeJS.ProcessEnv, cwd?: string): string {
  return execFileSync('git', args, {
    env,
    cwd,
    encoding: 'utf8',
    timeout: 15_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

/** Create a bare repo `<root>/<name>` with one commit on main (file README = `content`), push enabled. */
function makeBareRepo(root: string, name: string, content: string, env: NodeJS.ProcessEnv): void {
  const bare = join(root, name)
  mkdirSync(bare, { recursive: true })
  gitSync(['init', '-q', '--bare', '-b', 'main', bare], env)
  gitSync(['config', 'http.receivepack', 'true'], env, bare)
  const work = mkdtempSync(join(tmpdir(), 'portcullis-git-work-'))
  try {
    gitSync(['init', '-q', '-b', 'main', work], env)
    writeFileSync(join(work, 'README'), content)
    gitSync(['add', 'README'], env, work)
    gitSync(
      ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', 'commit', '-q', '-m', `initial ${name}`],
      env,
      work,
    )
    gitSync(['push', '-q', bare, 'main:main'], env, work)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

function cgiHandler(root: string, seen: GitSeen[]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://git.invalid')
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      HOME: root,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ''),
      REMOTE_USER: 'tester',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
    }
    if (req.headers['content-type']) env.CONTENT_TYPE = req.headers['content-type']
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length']
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding']
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol'])
    const record = (status: number): void => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        status,
        proxyAuthorization: req.headers['proxy-authorization'],
        authorization: req.headers.authorization,
      })
    }
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', () => clearTimeout(timer))
    child.stderr.on('data', () => undefined)
    child.stdin.on('error', () => undefined)
    req.pipe(child.stdin)
    let head = Buffer.alloc(0)
    let headerDone = false
    child.stdout.on('data', (chunk: Buffer) => {
      if (headerDone) {
        res.write(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const crlf = head.indexOf('\r\n\r\n')
      const lf = head.indexOf('\n\n')
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf
      if (end < 0) return
      const sepLen = end === crlf ? 4 : 2
      headerDone = true
      let status = 200
      const headers: Record<string, string> = {}
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':')
        if (i <= 0) continue
        const k = line.slice(0, i).trim()
        const v = line.slice(i + 1).trim()
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10) || 200
        else headers[k] = v
      }
      record(status)
      res.writeHead(status, headers)
      const rest = head.subarray(end + sepLen)
      if (rest.length > 0) res.write(rest)
    })
    child.stdout.on('end', () => {
      if (!headerDone) {
        record(502)
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end('git http-backend produced no CGI headers\n')
        return
      }
      res.end()
    })
  }
}

/**
 * Start the git origin for `name` (pin that name to 127.0.0.1 in the proxy's
 * upstream.resolve and pass ca.certFile as upstream.ca_file).
 * `repos` maps bare-repo paths (e.g. 'acme/widgets.git') to README content.
 */
export async function startGitServer(
  t: Test,
  name: string,
  repos: Record<string, string>,
  ca?: TestCa,
): Promise<GitServer> {
  const testCa = ca ?? createTestCa(t)
  const base = mkdtempSync(join(tmpdir(), 'portcullis-git-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const root = join(base, 'srv')
  const home = join(base, 'home')
  mkdirSync(root)
  mkdirSync(home)
  const env = gitEnv(home)
  for (const [repo, content] of Object.entries(repos)) makeBareRepo(root, repo, content, env)
  const seen: GitSeen[] = []
  const { key, cert } = testCa.issue([name])
  const server = createHttpsServer({ key, cert }, cgiHandler(root, seen))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return {
    port: (server.address() as AddressInfo).port,
    root,
    ca: testCa,
    seen,
    env,
    revParse: (repo, ref = 'refs/heads/main') => gitSync(['rev-parse', ref], env, join(root, repo)),
  }
}

/**
 * One smart-HTTP RPC sent with curl as agent ci-42 through the proxy (trusting its CA): a body git
 * would not send. `data` is curl's `--data-binary` argument (`@file` for bytes).
 */
export function gitRpcByCurl(
  pc: { readonly dir: string; readonly proxyPort: number },
  url: string,
  service: 'git-upload-pack' | 'git-receive-pack',
  data: string,
): Promise<CurlResult> {
  return curl([
    '-x',
    `http://ci-42:${TOKEN}@127.0.0.1:${pc.proxyPort}`,
    '--cacert',
    join(pc.dir, 'ca.pem'),
    '-H',
    `Content-Type: application/x-${service}-request`,
    '--data-binary',
    data,
    `${url}/${service}`,
  ])
}
