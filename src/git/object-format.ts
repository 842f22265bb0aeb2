/**
 * The two object formats git knows (SHA-1 and SHA-256) and object ids in
 * them. PURE.
 *
 * Object ids are kept as lower-case hex strings everywhere in src/git:
 * git's own hex parser accepts upper case, so we accept it too and fold it,
 * which keeps "same object" a plain string comparison.
 */

export type ObjectFormat = 'sha1' | 'sha256'

/** Raw digest length in bytes; the hex form is twice as long. */
export function oidRawLength(format: ObjectFormat): 20 | 32 {
  return format === 'sha1' ? 20 : 32
}

export function isZeroOid(oid: string): boolean {
  return /^0+$/.test(oid)
}

/** The object id spelled by `raw` (ASCII hex of exactly the format's length), lower-cased; null otherwise. */
export function parseOidHex(raw: Buffer, format: ObjectFormat): string | null {
  if (raw.length !== oidRawLength(format) * 2) return null
  const text = raw.toString('latin1')
  return /^[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : null
}
