/**
 * `inspect_body` scanning: credentials an agent must not send out, found in a request's target,
 * header names and values, or body. PURE: text in (bytes read as latin1, so any byte sequence
 * scans), the first detector's name out, never the secret itself (the name is what records show).
 *
 * Each text is scanned as written and, around its escapes only, as a form, cookie or JSON parser or
 * a UTF-16 reader would decode it (scan-spellings.ts). Every detector is anchored on a literal
 * (scan-detectors.ts), so the cost is one `indexOf` pass per anchor plus a bounded check per hit.
 * What these cannot see: a secret re-encoded (base64, hex, split across fields) on purpose.
 */
import { DETECTOR_REACH, DETECTORS, SHORTEST_MATCH } from './scan-detectors.js'
import { spellingWindows } from './scan-spellings.js'

/** The name of the first credential found in any of `texts` (in order), or null. */
export function findSecret(texts: readonly string[]): string | null {
  for (const text of texts) {
    const found = findSecretIn(text)
    if (found !== null) return found
  }
  return null
}

/** The first detector that matches `text` as written, else in any decoded spelling of it, or null. */
export function findSecretIn(text: string): string | null {
  if (text.length < SHORTEST_MATCH) return null
  const plain = scanText(text, 0, text.length, text.includes('+'))
  if (plain !== null) return plain
  for (const w of spellingWindows(text, DETECTOR_REACH)) {
    const found = scanText(w.text, w.from, w.to, false)
    if (found !== null) return found
  }
  return null
}

/** Every detector's name (docs, tests). */
export const SECRET_DETECTORS: readonly string[] = DETECTORS.map((d) => d.name)

/** The detectors that share each literal, so each literal costs one `indexOf` pass whatever shares it. */
interface Pass {
  readonly literal: string
  readonly lead: number
  readonly detectors: readonly number[]
}

const PASSES: readonly Pass[] = groupPasses()
const CASELESS: readonly number[] = DETECTORS.flatMap((d, k) => (d.caseless === undefined ? [] : [k]))

function groupPasses(): Pass[] {
  const passes = new Map<string, { literal: string; lead: number; detectors: number[] }>()
  DETECTORS.forEach((d, k) => {
    for (const { literal, lead } of d.anchors) {
      const pass = passes.get(literal) ?? { literal, lead, detectors: [] }
      if (pass.lead !== lead) throw new Error(`detectors share ${literal} at different leads`)
      pass.detectors.push(k)
      passes.set(literal, pass)
    }
  })
  return [...passes.values()]
}

/**
 * Reports each match starting in [from, to) of `text` (checks may read around it) to `onMatch`,
 * skipping detectors `skip` names, until `onMatch` returns true. With `plus`, the detectors that read
 * spaces also read `+` as one (the text holds a `+` that a form parser would turn into a space).
 */
function eachMatch(
  text: string,
  from: number,
  to: number,
  plus: boolean,
  skip: (k: number) => boolean,
  onMatch: (k: number, start: number, end: number) => boolean,
): void {
  // Matchers are opened per text, lazily: some keep what they measured for the next hit.
  const matchers: Array<((start: number) => number) | undefined> = []
  const plusMatchers: Array<((start: number) => number) | undefined> = []
  const check = (k: number, start: number): boolean => {
    const d = DETECTORS[k]!
    let end = (matchers[k] ??= d.open(text, false))(start)
    if (end < 0 && plus && d.readsPlus === true) end = (plusMatchers[k] ??= d.open(text, true))(start)
    return end >= 0 && onMatch(k, start, end)
  }
  for (const pass of PASSES) {
    if (pass.detectors.every(skip)) continue
    const { literal, lead, detectors } = pass
    for (let at = text.indexOf(literal, from + lead); at >= 0 && at < to + lead; at = text.indexOf(literal, at + 1))
      for (const k of detectors) if (!skip(k) && check(k, at - lead)) return
  }
  for (const k of CASELESS) {
    if (skip(k)) continue
    const finder = DETECTORS[k]!.caseless!
    finder.lastIndex = from
    for (let m = finder.exec(text); m !== null && m.index < to; m = finder.exec(text)) {
      if (check(k, m.index)) return
      finder.lastIndex = m.index + 1
    }
  }
}

/** The first detector (in order) with a match starting in [from, to) of `text`, or null. */
function scanText(text: string, from: number, to: number, plus: boolean): string | null {
  let first = DETECTORS.length
  eachMatch(
    text,
    from,
    to,
    plus,
    (k) => k >= first,
    (k) => {
      first = k
      return k === 0
    },
  )
  return DETECTORS[first]?.name ?? null
}

interface Span {
  readonly start: number
  readonly end: number
  readonly name: string
}

/**
 * `text` with every credential replaced by `<redacted:kind>` (for records of requests that carried
 * one), found by the same detectors and spellings as `findSecret`: a key spelled `%41KIA…` in a path
 * is cut out as written.
 */
export function redactSecrets(text: string): string {
  if (text.length < SHORTEST_MATCH) return text
  const spans: Span[] = []
  collectSpans(text, 0, text.length, text.includes('+'), spans, (i) => i)
  for (const w of spellingWindows(text, DETECTOR_REACH, true)) {
    const rawAt = w.rawAt as readonly number[]
    collectSpans(w.text, w.from, w.to, false, spans, (i) => rawAt[i]!)
  }
  if (spans.length === 0) return text
  spans.sort((a, b) => a.start - b.start)
  let out = ''
  let done = 0
  for (let k = 0; k < spans.length;) {
    const first = spans[k]!
    let end = first.end
    // Overlapping matches (one key seen as written and decoded) become one cut.
    for (k++; k < spans.length && spans[k]!.start < end; k++) end = Math.max(end, spans[k]!.end)
    out += `${text.slice(done, first.start)}<redacted:${first.name}>`
    done = end
  }
  return out + text.slice(done)
}

function collectSpans(
  text: string,
  from: number,
  to: number,
  plus: boolean,
  spans: Span[],
  toRaw: (i: number) => number,
): void {
  eachMatch(
    text,
    from,
    to,
    plus,
    () => false,
    (k, start, end) => {
      spans.push({ start: toRaw(start), end: toRaw(end), name: DETECTORS[k]!.name })
      return false
    },
  )
}
