/**
 * Is moving a ref from `old` to `new` a fast forward, as proven by the pushed
 * pack alone (SPEC §8)? PURE.
 *
 * Walk parents breadth-first from `new` through the pack's commits; the
 * answer is yes only if `old` is reached. A parent the pack does not hold
 * (the server already has it) ends that path, so history the server already
 * has never counts as proof: an empty pack, a thin pack whose commits cannot
 * be rebuilt, or an unreadable pack all answer `not_proven`; so does a walk
 * that reaches a parent outside the pack (`left_pack`: the new commits build
 * on history the server may have, reached by another push), which only a walk
 * that stays inside the pack can tell from a rewrite (`old_not_reached`: the
 * pack's commits lead back to roots, never to `old`). Each commit id
 * was computed from the commit's bytes, so the chain of parents is the chain
 * the server will store. Each commit is visited once.
 */

import { isZeroOid } from './object-format.js'
import type { PackReadResult } from './pack.js'

export type NotProvenWhy = 'pack_unreadable' | 'not_an_update' | 'new_not_in_pack' | 'left_pack' | 'old_not_reached'

export type FastForwardResult =
  | { readonly kind: 'fast_forward'; readonly walked: number }
  | { readonly kind: 'not_proven'; readonly why: NotProvenWhy; readonly detail?: string }

/** `old` and `new` are lower-case hex ids as parsed by receive-pack.ts. */
export function isFastForward(pack: PackReadResult, old: string, neu: string): FastForwardResult {
  if (isZeroOid(old) || isZeroOid(neu)) return { kind: 'not_proven', why: 'not_an_update' }
  if (old === neu) return { kind: 'fast_forward', walked: 0 }
  if (pack.kind === 'unreadable') return { kind: 'not_proven', why: 'pack_unreadable', detail: pack.problem }
  const commits = pack.pack.commits
  if (!commits.has(neu)) return { kind: 'not_proven', why: 'new_not_in_pack' }
  const seen = new Set<string>([neu])
  const queue: string[] = [neu]
  let leftPack = false
  for (let i = 0; i < queue.length; i++) {
    for (const parent of commits.get(queue[i]!) ?? []) {
      if (parent === old) return { kind: 'fast_forward', walked: i + 1 }
      if (!commits.has(parent)) leftPack = true
      else if (!seen.has(parent)) {
        seen.add(parent)
        queue.push(parent)
      }
    }
  }
  return { kind: 'not_proven', why: leftPack ? 'left_pack' : 'old_not_reached' }
}
