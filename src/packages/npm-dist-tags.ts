/**
 * Where a dist-tag goes when the version it pointed at is withheld (SPEC §11). PURE.
 *
 * A tag's kind is the kind of the version it pointed at. It moves to the highest remaining
 * version *below* that one (by semver), as npm's own `--before` does (`<=tagged`), so a tag never
 * jumps forward to a version its maintainers did not tag:
 * - a stable tag moves to a stable version only, never to a prerelease;
 * - a prerelease tag (`next` → 3.0.0-rc.2) moves to the highest prerelease below it, and to no
 *   stable: SPEC §11 keeps each tag to its kind, so `npm i pkg@next` never quietly installs a
 *   version from another line than the one asked for;
 * - `latest` must exist for `npm install pkg` to work: when nothing fits below, it takes the
 *   highest remaining version of its kind above (a stable `latest` still never a prerelease);
 * - any other tag with no candidate is dropped (`npm i pkg@tag` then fails with ETARGET).
 * A `latest` that can find no place is reported as `null`; the caller decides (packument: 403).
 */
import semver, { type SemVer } from 'semver'

export interface TagMove {
  readonly from: string
  readonly to: string
}

export interface DistTagPlan {
  readonly tags: Record<string, unknown>
  readonly moved: ReadonlyMap<string, TagMove>
  readonly dropped: readonly string[]
  /** False when `latest` pointed at a withheld version and no version can take its place. */
  readonly latestPlaced: boolean
}

/** Remaining versions parsed once, highest first; versions that are not semver cannot take a tag. */
export function sortRemaining(versions: readonly string[]): readonly SemVer[] {
  const parsed: SemVer[] = []
  for (const v of versions) {
    const p = semver.parse(v)
    if (p !== null) parsed.push(p)
  }
  return parsed.sort((a, b) => b.compare(a))
}

const isPre = (v: SemVer): boolean => v.prerelease.length > 0

function placeTag(tag: string, target: string, remaining: readonly SemVer[]): string | null {
  const from = semver.parse(target)
  const pre = from !== null && isPre(from)
  const below = (v: SemVer): boolean => from === null || v.compare(from) < 0
  const pick = (ok: (v: SemVer) => boolean): string | null => remaining.find(ok)?.version ?? null
  let to = pre ? pick((v) => isPre(v) && below(v)) : pick((v) => !isPre(v) && below(v))
  if (to === null && tag === 'latest') to = pre ? pick(() => true) : pick((v) => !isPre(v))
  return to
}

/** Re-point every tag whose version was withheld; `remaining` from sortRemaining(). */
export function planDistTags(
  tags: Record<string, unknown>,
  withheld: ReadonlySet<string>,
  remaining: readonly SemVer[],
): DistTagPlan {
  const moved = new Map<string, TagMove>()
  const dropped: string[] = []
  let latestPlaced = true
  const entries: [string, unknown][] = []
  for (const [tag, target] of Object.entries(tags)) {
    if (typeof target !== 'string' || !withheld.has(target)) {
      entries.push([tag, target])
      continue
    }
    const to = placeTag(tag, target, remaining)
    if (to !== null) {
      moved.set(tag, { from: target, to })
      entries.push([tag, to])
    } else {
      dropped.push(tag)
      if (tag === 'latest') latestPlaced = false
    }
  }
  // fromEntries defines own properties, so a hostile `__proto__` tag stays data, not a prototype.
  return { tags: Object.fromEntries(entries), moved, dropped, latestPlaced }
}
