/**
 * Object ids and commit headers (gitformat-pack(5), "Object encoding"; git's
 * parse_commit_buffer). PURE.
 */

import { createHash } from 'node:crypto'
import { parseOidHex, type ObjectFormat } from './object-format.js'

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag'

/** The id git gives an object: hash(`<type> <size>\0` + content) in the repository's format. */
export function hashObject(type: ObjectType, content: Buffer, format: ObjectFormat): string {
  return createHash(format).update(`${type} ${content.length}\0`, 'latin1').update(content).digest('hex')
}

/**
 * The parents of a commit, as git reads them: a `tree` line first, then
 * consecutive `parent` lines; `parent` lines anywhere else do not count.
 * null when the header is not one git would parse (git: "bogus commit
 * object", "bad parents in commit").
 */
export function parseCommitParents(content: Buffer, format: ObjectFormat): string[] | null {
  const hexLen = format === 'sha1' ? 40 : 64
  // Lengths checked as git checks them: each header line must be followed by at least one more byte.
  if (content.length <= 6 + hexLen || !hasAt(content, 0, 'tree ') || content[5 + hexLen] !== 0x0a) return null
  if (parseOidHex(content.subarray(5, 5 + hexLen), format) === null) return null
  const parents: string[] = []
  let p = 5 + hexLen + 1
  // git stops looking for parents at the first line that is not exactly "parent <hex>\n".
  while (p + 7 + hexLen < content.length && hasAt(content, p, 'parent ')) {
    const oid = parseOidHex(content.subarray(p + 7, p + 7 + hexLen), format)
    if (content.length <= p + 8 + hexLen || oid === null || content[p + 7 + hexLen] !== 0x0a) return null
    parents.push(oid)
    p += 8 + hexLen
  }
  return parents
}

function hasAt(buf: Buffer, at: number, text: string): boolean {
  return buf.length >= at + text.length && buf.subarray(at, at + text.length).toString('latin1') === text
}
