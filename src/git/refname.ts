/**
 * Ref names a push may name, by git check-ref-format(1)'s rules (refs.c
 * check_refname_component), narrowed to what a policy can match safely.
 * PURE.
 *
 * Git itself allows bytes ≥ 0x80 in ref names; we accept them only as valid
 * UTF-8, so that the name the policy matches is the name the server stores
 * (a lossy decode could make two different refs look alike).
 */

export type RefnameProblem =
  | 'not_utf8'
  | 'not_under_refs'
  | 'empty_component'
  | 'dot_component'
  | 'lock_component'
  | 'double_dot'
  | 'at_brace'
  | 'forbidden_char'
  | 'trailing_dot'
  | 'too_long'

/** Longest ref name accepted; a command pkt-line cannot carry much more anyway. */
export const MAX_REFNAME_BYTES = 4096

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** Decode and check a ref name given as raw bytes: the name, or why it is refused. */
export function parseRefname(raw: Buffer):
  | { readonly ok: true; readonly name: string }
  | {
      readonly ok: false
      readonly problem: RefnameProblem
    } {
  if (raw.length > MAX_REFNAME_BYTES) return { ok: false, problem: 'too_long' }
  let name: string
  try {
    name = UTF8.decode(raw)
  } catch {
    return { ok: false, problem: 'not_utf8' }
  }
  const problem = checkRefname(name)
  return problem === null ? { ok: true, name } : { ok: false, problem }
}

/** null when `name` is a well-formed ref under `refs/`; otherwise the first rule it breaks. */
export function checkRefname(name: string): RefnameProblem | null {
  if (!name.startsWith('refs/')) return 'not_under_refs'
  // Control characters, DEL, space and the characters git reserves for revision syntax and globs.
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return 'forbidden_char'
  if (name.includes('..')) return 'double_dot'
  if (name.includes('@{')) return 'at_brace'
  if (name.endsWith('.')) return 'trailing_dot'
  for (const component of name.split('/')) {
    if (component === '') return 'empty_component'
    if (component.startsWith('.')) return 'dot_component'
    if (component.endsWith('.lock')) return 'lock_component'
  }
  return null
}
