import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { isFastForward } from '../git/fast-forward.js'
import { readPack, type PackReadResult } from '../git/pack.js'
import { parseReceivePackHead, type ReceivePackHead } from '../git/receive-pack.js'
import { buildRefusal, type RefusalAnswer } from '../git/report-status.js'
import { SpillBuffer } from '../git/spill-buffer.js'
import type { RepoControl } from '../policy/compiled.js'
import { checkPushCommand, explainPushRefusal, type PushCommand, type PushRefusal } from '../policy/push-rules.js'
import type { DenyDecision, RuleId } from '../policy/types.js'
import { drainBody, guardIdle } from './read-body.js'

/** What a push record says of each ref (SPEC §8: allowed pushes name the refs they update, refused ones why). */
export interface PushedRef {
  readonly ref: string
  readonly old: string
  readonly new: string
  /** Set on a refused push: this ref's own reason, or `with_push` for a ref refused with the rest. */
  readonly refused?: PushRefusal | 'pack_too_large' | 'with_push'
}

export type PushGateOutcome =
  /** Allowed (or nothing to decide: git's `0000` probe): forward `body`, then `close()`. */
  | {
      readonly kind: 'pass'
      readonly body: Readable
      /** Bytes of `body`, as received. */
      readonly bytes: number
      readonly refs: readonly PushedRef[]
      readonly close: () => Promise<void>
    }
  /** Refused: `answer` is the receive-pack report-status git prints, or an HTTP error when git asked for none. */
  | {
      readonly kind: 'refuse'
      readonly decision: DenyDecision
      readonly refs: readonly PushedRef[]
      readonly answer: (requestId: string) => RefusalAnswer
      readonly audit?: AuditPassage
    }
  /** Not a push the proxy can read at all: a plain denial. */
  | { readonly kind: 'deny'; readonly decision: DenyDecision; readonly audit?: AuditPassage }

/**
 * Audit mode blocks nothing: a push enforce would refuse still goes upstream whole. `body` is what
 * was held, then (past the size limit) the rest as it arrives; `close()` frees what was held.
 */
export interface AuditPassage {
  readonly body: Readable
  /** Bytes of it already read from the client. */
  readonly bytesRead: number
  readonly close: () => Promise<void>
}

/** The head of a push is in its first MiB (receive-pack.ts caps it there). */
const HEAD_BYTES = 1024 * 1024

/**
 * git smart-HTTP pushes (`POST …/git-receive-pack`) on a repo rule with `access: write`: the I/O edge
 * of policy/push-rules.ts. The whole body is held (in memory up to a few MiB, then in a private
 * temporary file; past push.max_pack_bytes it is refused) before anything goes upstream; every command
 * is checked, updates of existing branches are proven fast forwards from the pushed pack (unless
 * push.force); a push with any refused command is refused whole, answered with a report-status that
 * makes `git push` print `! [remote rejected] <ref> (portcullis: …)` for every ref.
 */
export async function gatePush(
  req: IncomingMessage,
  agent: string,
  repo: RepoControl,
  ruleId: RuleId | null,
  idleTimeoutMs: number,
  audit = false,
): Promise<PushGateOutcome> {
  const deny = (detail: string, explanation: string): PushGateOutcome => ({
    kind: 'deny',
    decision: { verdict: 'deny', reason: 'denied_git_push', ruleId, detail, explanation },
  })
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
  if (encoding !== 'identity' && encoding !== '')
    return deny('unreadable', 'the proxy reads pushes uncompressed (git never compresses them)')
  const buf = new SpillBuffer({ maxBytes: repo.push.maxPackBytes + HEAD_BYTES })
  let outcome: PushGateOutcome | null = null
  try {
    const read = await holdBody(req, buf, idleTimeoutMs)
    outcome = await decide(req, buf, read, agent, repo, ruleId, deny, !audit)
    // A push read whole, or stopped at the size limit with the rest still to come, can still go on.
    if (audit && outcome.kind !== 'pass' && read.kind !== 'cut_off') {
      const rest = read.kind === 'too_large' ? { first: read.chunk, req } : null
      const bytesRead = buf.byteLength + (rest?.first.length ?? 0)
      outcome = { ...outcome, audit: { body: heldThenRest(buf, rest), bytesRead, close: () => buf.close() } }
    }
    return outcome
  } finally {
    if (outcome?.kind !== 'pass' && outcome?.audit === undefined) await buf.close()
  }
}

/** What was held, then (a push past the limit) the chunk that did not fit and the rest of the request. */
function heldThenRest(buf: SpillBuffer, rest: { first: Buffer; req: IncomingMessage } | null): Readable {
  const held = buf.createReadStream()
  if (rest === null) return held
  return Readable.from(
    (async function* () {
      yield* held
      yield rest.first
      yield* rest.req
    })(),
    { objectMode: false },
  )
}

async function decide(
  req: IncomingMessage,
  buf: SpillBuffer,
  read: HeldBody,
  agent: string,
  repo: RepoControl,
  ruleId: RuleId | null,
  deny: (detail: string, explanation: string) => PushGateOutcome,
  drainPastLimit: boolean,
): Promise<PushGateOutcome> {
  if (read.kind === 'cut_off') return deny('unreadable', 'the push ended before its body was complete')
  if (read.kind === 'too_large') {
    const head = parseReceivePackHead(buf.prefix(HEAD_BYTES))
    // Read to its end before the refusal (else the reset loses it); in audit mode the rest goes upstream.
    if (drainPastLimit) await drainBody(req)
    if (head.kind !== 'head') return deny('pack_too_large', explainPushRefusal('pack_too_large', repo.push, agent))
    return refuseTooLarge(head.head, repo, agent, ruleId)
  }
  const parsed = parseReceivePackHead(await buf.read(0, HEAD_BYTES), { final: true })
  if (parsed.kind !== 'head')
    return deny(
      'unreadable',
      `the push's commands could not be read (${parsed.kind === 'error' ? parsed.code : 'truncated'})`,
    )
  const head = parsed.head
  // The buffer allows the head on top of the pack; the pack alone is held to push.max_pack_bytes.
  if (buf.byteLength - head.packOffset > repo.push.maxPackBytes) return refuseTooLarge(head, repo, agent, ruleId)
  // Options ride along to the server's hooks, where forges act on them (GitLab's
  // merge_request.merge_when_pipeline_succeeds and ci.variable, Gitea's repo.private): none pass.
  if (head.pushOptions.length > 0) return refuseAll(head, () => 'push_options', 'push_options', repo, agent, ruleId)
  const refusals = new Map<PushCommand, PushRefusal>()
  const needProof: PushCommand[] = []
  // Not fast forwards only for want of proof: the pack lacks the new commit or its way to the old tip
  // (not_proven), or is past the limits the proxy reads a pack within (proof_too_large).
  const unproven = new Map<PushCommand, Unproven>()
  for (const cmd of head.commands) {
    const v = checkPushCommand(cmd, repo.push, agent)
    if (!v.ok) refusals.set(cmd, v.detail)
    else if (v.needsProof) needProof.push(cmd)
  }
  if (refusals.size === 0 && needProof.length > 0) {
    // Read the pack once, only when every command passed its ref checks: a refused push costs no parsing.
    const pack: PackReadResult = await readPack(buf.packSource(head.packOffset), head.objectFormat)
    for (const cmd of needProof) {
      const proof = isFastForward(pack, cmd.old, cmd.new)
      if (proof.kind === 'fast_forward') continue
      refusals.set(cmd, 'not_fast_forward')
      if (proof.why === 'pack_unreadable' && proof.detail === 'limit_exceeded') unproven.set(cmd, 'proof_too_large')
      else if (proof.why !== 'old_not_reached') unproven.set(cmd, 'not_proven')
    }
  }
  if (refusals.size > 0) {
    const first = [...refusals.values()][0] as PushRefusal
    return refuseAll(head, (cmd) => refusals.get(cmd) ?? 'with_push', first, repo, agent, ruleId, unproven)
  }
  const refs = head.commands.map((c) => ({ ref: c.ref, old: c.old, new: c.new }))
  return { kind: 'pass', body: buf.createReadStream(), bytes: buf.byteLength, refs, close: () => buf.close() }
}

/**
 * A push over max_pack_bytes: each ref still gets its own reason when its command alone is refused
 * (a branch it may not push, a tag, a deletion), so the agent does not shrink the push only to learn
 * the branch was never allowed; the others are refused for the size. The record's detail is the first
 * ref's own reason, else pack_too_large.
 */
function refuseTooLarge(
  head: ReceivePackHead,
  repo: RepoControl,
  agent: string,
  ruleId: RuleId | null,
): PushGateOutcome {
  const own = new Map<PushCommand, PushRefusal>()
  for (const cmd of head.commands) {
    const v = checkPushCommand(cmd, repo.push, agent)
    if (!v.ok) own.set(cmd, v.detail)
  }
  const first = own.values().next().value ?? 'pack_too_large'
  return refuseAll(head, (cmd) => own.get(cmd) ?? 'pack_too_large', first, repo, agent, ruleId)
}

/** Why a `not_fast_forward` was not proven either way (explainPushRefusal's sentence for it). */
type Unproven = 'not_proven' | 'proof_too_large'

function refuseAll(
  head: ReceivePackHead,
  why: (cmd: PushCommand) => PushRefusal | 'pack_too_large' | 'with_push',
  detail: PushRefusal | 'pack_too_large',
  repo: RepoControl,
  agent: string,
  ruleId: RuleId | null,
  unproven: ReadonlyMap<PushCommand, Unproven> = new Map(),
): PushGateOutcome {
  const refs: PushedRef[] = head.commands.map((c) => ({ ref: c.ref, old: c.old, new: c.new, refused: why(c) }))
  const sentence = (refused: PushRefusal | 'pack_too_large', cmd: PushCommand | undefined): string =>
    explainPushRefusal(
      refused === 'not_fast_forward' && cmd !== undefined ? (unproven.get(cmd) ?? refused) : refused,
      repo.push,
      agent,
    )
  const explanation = sentence(
    detail,
    head.commands.find((c) => why(c) === detail),
  )
  return {
    kind: 'refuse',
    decision: { verdict: 'deny', reason: 'denied_git_push', ruleId, detail, explanation },
    refs,
    answer: (requestId) =>
      buildRefusal({
        sideBand: head.sideBand,
        reportStatus: head.reportStatus,
        refs: refs.map((r, i) => ({
          ref: r.ref,
          reason: `portcullis: ${
            r.refused === 'with_push' || r.refused === undefined
              ? 'refused with the rest of this push'
              : sentence(r.refused, head.commands[i])
          }; request id ${requestId}`,
        })),
        message: `portcullis: push refused (${detail}); request id ${requestId}`,
      }),
  }
}

/** How holding a push's body ended: whole, at the size limit (with the chunk that did not fit), or cut off. */
type HeldBody =
  { readonly kind: 'ok' } | { readonly kind: 'too_large'; readonly chunk: Buffer } | { readonly kind: 'cut_off' }

/** Read the request body into `buf`; stop at its limit, or when the client goes quiet for idleTimeoutMs. */
async function holdBody(req: IncomingMessage, buf: SpillBuffer, idleTimeoutMs: number): Promise<HeldBody> {
  const lift = guardIdle(req, idleTimeoutMs)
  try {
    // Leaving a plain `for await` destroys the stream, and an IncomingMessage destroyed before its end
    // destroys the socket: the refusal of a push past the limit was lost with it (git printed
    // "curl 55 Send failure: Broken pipe" instead of the reasons), unless the client had already
    // sent its last chunk. The request stays open for drainBody() and the answer.
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      const r = await buf.append(chunk as Buffer)
      if (r.kind !== 'ok') return { kind: 'too_large', chunk: chunk as Buffer }
    }
  } catch {
    return { kind: 'cut_off' }
  } finally {
    lift()
  }
  return req.complete ? { kind: 'ok' } : { kind: 'cut_off' }
}
