/**
 * Ref-level push rules (SPEC §8: agents propose, humans merge). PURE: the commands of a push, the
 * rule's `push` block and what the pack proved in, one verdict per command out.
 *
 * Evaluation order for each `<old> <new> <ref>` command:
 *  1. `refs/tags/*`: creating, moving or deleting a tag needs `push.tags` (detail `tag`).
 *  2. Any other namespace than `refs/heads/` is never allowed (`ref_not_allowed`).
 *  3. The branch must match `push.branches` (`{agent}` is the agent id; `*` one segment, `**` any),
 *     else `ref_not_allowed`.
 *  4. Deleting (new = zeros) needs `push.delete` (`delete`).
 *  5. Updating an existing ref (old and new both set) must be a fast forward, proven from the pushed
 *     pack, unless `push.force` (`not_fast_forward`). Creating a branch (old = zeros) needs no proof.
 * A push is refused whole when any command is refused (the caller answers every ref).
 */
import type { PushControl } from './compiled.js'
import { formatSizeBytes } from '../byte-size.js'
import { matchPathPattern, parsePathPattern } from './path-pattern.js'

export interface PushCommand {
  readonly old: string
  readonly new: string
  readonly ref: string
}

export type PushRefusal = 'ref_not_allowed' | 'delete' | 'tag' | 'not_fast_forward' | 'push_options'

export type CommandVerdict =
  { readonly ok: true; readonly needsProof: boolean } | { readonly ok: false; readonly detail: PushRefusal }

const ZERO = /^0+$/

/** The command's verdict before any pack is read; `needsProof` asks the caller for the fast-forward proof. */
export function checkPushCommand(cmd: PushCommand, push: PushControl, agent: string): CommandVerdict {
  const creating = ZERO.test(cmd.old)
  const deleting = ZERO.test(cmd.new)
  if (cmd.ref.startsWith('refs/tags/')) return push.tags ? { ok: true, needsProof: false } : refuse('tag')
  if (!cmd.ref.startsWith('refs/heads/')) return refuse('ref_not_allowed')
  if (!branchAllowed(push, agent, cmd.ref.slice('refs/heads/'.length))) return refuse('ref_not_allowed')
  if (deleting) return push.delete ? { ok: true, needsProof: false } : refuse('delete')
  return { ok: true, needsProof: !creating && !push.force }
}

/** Does `branch` match one of `push.branches`, with `{agent}` substituted? */
export function branchAllowed(push: PushControl, agent: string, branch: string): boolean {
  for (const text of push.branches) {
    const parsed = parsePathPattern(`/${text.replaceAll('{agent}', agent)}`)
    if (parsed.ok && matchPathPattern(parsed.pattern, `/${branch}`, '')) return true
  }
  return false
}

/**
 * One sentence for `git push` to print next to a refused ref: what is allowed instead. `not_proven` is a
 * `not_fast_forward` whose pack does not hold the new commit or its history (git sends none the server
 * has), or whose walk from the new commit leaves the pack before the old tip: nothing says history was
 * rewritten, only that the proxy cannot tell. `proof_too_large` is one
 * whose pack is past what the proxy reads to prove it (git/pack.ts PackLimits: objects, inflated bytes,
 * commit bytes), refused rather than checked at any cost.
 */
export function explainPushRefusal(
  detail: PushRefusal | 'pack_too_large' | 'unreadable' | 'not_proven' | 'proof_too_large',
  push: PushControl,
  agent: string,
): string {
  const where = push.branches.map((b) => b.replaceAll('{agent}', agent)).join(', ')
  switch (detail) {
    case 'ref_not_allowed':
      return `agent ${agent} may push only to ${where}; push there and open a pull request`
    case 'delete':
      return `agent ${agent} may not delete branches; ask a person to delete it`
    case 'tag':
      return `agent ${agent} may not create, move or delete tags; tags are for people`
    case 'not_fast_forward':
      return `agent ${agent} may not rewrite history (not a fast forward); push a new branch under ${where} instead`
    case 'not_proven':
      return `the proxy could not prove this update a fast forward: it checks the commits the push carries, and this one carries none leading to the old tip (the server may have them already, or the update rewrites history); push a new branch under ${where} instead`
    case 'proof_too_large':
      return `the proxy did not prove this update a fast forward: the push holds more commit data than it checks; push a new branch under ${where} instead`
    case 'push_options':
      return 'push options (git push -o) are not passed on: forges act on them (merge when the pipeline succeeds, CI variables, repository settings); push without -o and open a pull request'
    case 'pack_too_large':
      return `the push is larger than ${formatSizeBytes(push.maxPackBytes)} (push.max_pack_bytes)`
    case 'unreadable':
      return 'the proxy could not read this push'
  }
}

function refuse(detail: PushRefusal): CommandVerdict {
  return { ok: false, detail }
}
