import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'
import { isFastForward, type FastForwardResult } from '../../../src/git/fast-forward.js'
import { isZeroOid } from '../../../src/git/object-format.js'
import { readPack, type PackReadResult } from '../../../src/git/pack.js'
import { chompLf, encodePktLine, FLUSH_PKT, readPktLine } from '../../../src/git/pkt-line.js'
import {
  DEFAULT_RECEIVE_PACK_HEAD_LIMITS,
  parseReceivePackHead,
  type ReceivePackHead,
} from '../../../src/git/receive-pack.js'
import { buildRefusal, type RefRefusal } from '../../../src/git/report-status.js'
import { SpillBuffer } from '../../../src/git/spill-buffer.js'

/**
 * A loopback smart-HTTP git server that does what Portcullis will do with a
 * push: hold the body (SpillBuffer), read the head, read the pack, prove
 * fast-forwards, then either answer with a refusal (buildRefusal) or replay
 * the held body into a real `git receive-pack --stateless-rpc`.
 * It listens on 127.0.0.1 only.
 */

export interface Verdict {
  readonly head: ReceivePackHead
  readonly pack: PackReadResult | null
  /** One per command, in order; null for creations and deletions. */
  readonly fastForward: readonly (FastForwardResult | null)[]
}

export interface PushServerOptions {
  readonly bare: string
  readonly env: NodeJS.ProcessEnv
  readonly tmpDir: string
  /** Refusals for the push, or null to let it through. */
  readonly decide: (v: Verdict) => readonly RefRefusal[] | null
  readonly message?: string
  /** Capabilities removed from the advertisement, to make git ask for less. */
  readonly stripCapabilities?: readonly string[]
  readonly memoryBytes?: number
}

export interface PushServer {
  readonly url: string
  readonly verdicts: Verdict[]
  /** Bodies of POSTs that carried no commands (git's probe before a chunked upload). */
  readonly probes: number[]
  readonly spills: (string | null)[]
  /** Resolves once every request so far has been fully handled (bodies closed, temp files gone). */
  settled(): Promise<void>
  close(): Promise<void>
}

export async function startPushServer(opts: PushServerOptions): Promise<PushServer> {
  const verdicts: Verdict[] = []
  const probes: number[] = []
  const spills: (string | null)[] = []
  const handlers: Promise<void>[] = []
  const server = createServer((req, res) => {
    handlers.push(
      handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500)
        res.end()
      }),
    )
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.method === 'GET' && url.pathname === '/repo.git/info/refs') return advertise(res)
    if (req.method === 'POST' && url.pathname === '/repo.git/git-receive-pack') return receive(req, res)
    res.writeHead(404).end()
  }

  async function advertise(res: ServerResponse): Promise<void> {
    const out = await runGit(['receive-pack', '--stateless-rpc', '--advertise-refs', opts.bare], null)
    res.writeHead(200, {
      'content-type': 'application/x-git-receive-pack-advertisement',
      'cache-control': 'no-cache',
    })
    res.end(
      Buffer.concat([
        encodePktLine('# service=git-receive-pack\n'),
        FLUSH_PKT,
        stripCaps(out, opts.stripCapabilities ?? []),
      ]),
    )
  }

  async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = new SpillBuffer({ maxBytes: 64 * 1024 * 1024, memoryBytes: opts.memoryBytes, tmpDir: opts.tmpDir })
    try {
      for await (const chunk of req) {
        if ((await body.append(chunk as Buffer)).kind !== 'ok') return void res.writeHead(413).end()
      }
      spills.push(body.spillPath)
      const headBytes = await body.read(0, DEFAULT_RECEIVE_PACK_HEAD_LIMITS.maxHeadBytes)
      const parsed = parseReceivePackHead(headBytes, { final: true })
      if (parsed.kind !== 'head') return void res.writeHead(400).end()
      const head = parsed.head
      if (head.commands.length === 0) probes.push(body.byteLength)
      else {
        const pack = head.expectsPack ? await readPack(body.packSource(head.packOffset), head.objectFormat) : null
        const fastForward = head.commands.map((c) =>
          isZeroOid(c.old) || isZeroOid(c.new) ? null : isFastForward(pack!, c.old, c.new),
        )
        const verdict = { head, pack, fastForward }
        verdicts.push(verdict)
        const refusals = opts.decide(verdict)
        if (refusals !== null) {
          const answer = buildRefusal({
            sideBand: head.sideBand,
            reportStatus: head.reportStatus,
            refs: refusals,
            ...(opts.message === undefined ? {} : { message: opts.message }),
          })
          if (answer.kind === 'http_error')
            return void res.writeHead(403, { 'content-type': 'text/plain' }).end('refused\n')
          res.writeHead(200, { 'content-type': answer.contentType, 'cache-control': 'no-cache' })
          return void res.end(answer.body)
        }
      }
      await forward(body, res)
    } finally {
      await body.close()
    }
  }

  /** Replay the held body into the real receive-pack and stream its answer back. */
  async function forward(body: SpillBuffer, res: ServerResponse): Promise<void> {
    const child = spawn('git', ['receive-pack', '--stateless-rpc', opts.bare], {
      env: opts.env,
      stdio: ['pipe', 'pipe', 'ignore'],
    })
    res.writeHead(200, { 'content-type': 'application/x-git-receive-pack-result', 'cache-control': 'no-cache' })
    const closed = once(child, 'close')
    await Promise.all([pipeline(body.createReadStream(), child.stdin), pipeline(child.stdout, res)])
    await closed
  }

  async function runGit(args: string[], input: Buffer | null): Promise<Buffer> {
    const child = spawn('git', args, { env: opts.env, stdio: ['pipe', 'pipe', 'ignore'] })
    const out: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stdin.end(input ?? undefined)
    await once(child, 'close')
    return Buffer.concat(out)
  }

  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/repo.git`,
    verdicts,
    probes,
    spills,
    settled: async () => {
      await Promise.all(handlers)
    },
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** Drop capabilities from the first advertised ref line. */
function stripCaps(adv: Buffer, strip: readonly string[]): Buffer {
  if (strip.length === 0) return adv
  const first = readPktLine(adv, 0)
  if (first.kind !== 'packet' || first.packet.kind !== 'data') return adv
  const line = chompLf(first.packet.payload)
  const nul = line.indexOf(0)
  const caps = line
    .subarray(nul + 1)
    .toString('latin1')
    .split(' ')
    .filter((c) => !strip.includes(c))
  const rebuilt = Buffer.concat([line.subarray(0, nul + 1), Buffer.from(caps.join(' ') + '\n', 'latin1')])
  return Buffer.concat([encodePktLine(rebuilt), adv.subarray(first.next)])
}
