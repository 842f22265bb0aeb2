/**
 * A unified diff (`diff -u`, `git apply` reads it) of two texts, line by line, with three lines of
 * context: the `--diff` output of `portcullis suggest`. Myers' O(ND) algorithm; config files are
 * small and the edits few. PURE.
 */
const CONTEXT = 3

type Op = { readonly kind: ' ' | '-' | '+'; readonly line: string }

/**
 * A last line without its newline differs from the same line with one (patch must add or drop the
 * newline), so it carries a mark no split line can hold: a trailing '\n'. Printed, it is the line and
 * then `\\ No newline at end of file`.
 */
const NO_EOL = '\n'

function splitLines(text: string): string[] {
  if (text === '') return []
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  else lines[lines.length - 1] += NO_EOL
  return lines
}

/** The edit script from a to b (Myers' greedy forward search, then a backtrack over the saved frontiers). */
function editScript(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length
  const m = b.length
  const max = n + m
  const offset = max + 1
  const v = new Array<number>(2 * max + 3).fill(0)
  const trace: number[][] = []
  let found = false
  for (let d = 0; d <= max && !found; d++) {
    trace.push([...v])
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number))
      let x = down ? (v[offset + k + 1] as number) : (v[offset + k - 1] as number) + 1
      let y = x - k
      while (x < n && y < m && a[x] === b[y]) {
        x++
        y++
      }
      v[offset + k] = x
      if (x >= n && y >= m) {
        found = true
        break
      }
    }
  }
  const ops: Op[] = []
  let x = n
  let y = m
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d] as number[]
    const k = x - y
    const down = k === -d || (k !== d && (vd[offset + k - 1] as number) < (vd[offset + k + 1] as number))
    const prevK = down ? k + 1 : k - 1
    const prevX = vd[offset + prevK] as number
    const prevY = prevX - prevK
    while (x > prevX && y > prevY) {
      ops.push({ kind: ' ', line: a[--x] as string })
      y--
    }
    if (d > 0) {
      if (down) ops.push({ kind: '+', line: b[--y] as string })
      else ops.push({ kind: '-', line: a[--x] as string })
    }
  }
  return ops.reverse()
}

/** `--- a/<name>` / `+++ b/<name>` and hunks; '' when the texts are equal. */
export function unifiedDiff(before: string, after: string, name: string): string {
  const ops = editScript(splitLines(before), splitLines(after))
  if (ops.every((o) => o.kind === ' ')) return ''
  const out = [`--- a/${name}`, `+++ b/${name}`]
  // Line numbers before each op, in both texts.
  const posA: number[] = []
  const posB: number[] = []
  let la = 0
  let lb = 0
  for (const o of ops) {
    posA.push(la)
    posB.push(lb)
    if (o.kind !== '+') la++
    if (o.kind !== '-') lb++
  }
  let i = 0
  while (i < ops.length) {
    if (ops[i]?.kind === ' ') {
      i++
      continue
    }
    const start = Math.max(0, i - CONTEXT)
    let end = i
    // Extend the hunk while the next change is within 2 × CONTEXT unchanged lines.
    for (let j = i; j < ops.length; j++) {
      if (ops[j]?.kind !== ' ') end = j
      else if (j - end > 2 * CONTEXT) break
    }
    const stop = Math.min(ops.length, end + CONTEXT + 1)
    const hunk = ops.slice(start, stop)
    const countA = hunk.filter((o) => o.kind !== '+').length
    const countB = hunk.filter((o) => o.kind !== '-').length
    const fromA = countA === 0 ? (posA[start] as number) : (posA[start] as number) + 1
    const fromB = countB === 0 ? (posB[start] as number) : (posB[start] as number) + 1
    out.push(`@@ -${fromA},${countA} +${fromB},${countB} @@`)
    for (const o of hunk)
      if (o.line.endsWith(NO_EOL)) out.push(`${o.kind}${o.line.slice(0, -1)}`, '\\ No newline at end of file')
      else out.push(`${o.kind}${o.line}`)
    i = stop
  }
  return `${out.join('\n')}\n`
}
