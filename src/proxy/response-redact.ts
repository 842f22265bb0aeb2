/**
 * Masks inject_headers secrets in what an upstream sends back: an endpoint that echoes request
 * headers (httpbin's /headers, a debug page, an error that quotes the request) would otherwise hand
 * the credential the proxy added to the sandbox it is kept from. PURE: bytes in, bytes out.
 *
 * Each occurrence of a secret is overwritten with `*` of the same length, so Content-Length stays
 * right. A stream is masked chunk by chunk, holding back the last (longest secret − 1) bytes of each
 * chunk in case a secret straddles two. What this cannot see: a secret re-encoded by the upstream
 * (base64, JSON `\u` escapes). Requests with injected headers ask for identity encoding, and a compressed
 * answer to one is refused (forward.ts).
 */
export interface SecretMasker {
  /** The masked bytes that are safe to send now (some of `chunk` may be held back). */
  push(chunk: Buffer): Buffer
  /** The bytes held back, masked: at the end of the stream. */
  flush(): Buffer
}

const STAR = 0x2a

export function maskSecrets(data: Buffer, secrets: readonly Buffer[]): Buffer {
  let out: Buffer | null = null
  for (const secret of secrets) {
    if (secret.length === 0) continue
    let at = (out ?? data).indexOf(secret)
    while (at >= 0) {
      out ??= Buffer.from(data)
      out.fill(STAR, at, at + secret.length)
      at = out.indexOf(secret, at + secret.length)
    }
  }
  return out ?? data
}

export function maskText(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) if (s !== '' && out.includes(s)) out = out.split(s).join('*'.repeat(s.length))
  return out
}

/** A field name with every secret (given lower-case) masked, whatever its case there. */
export function maskName(name: string, lowerSecrets: readonly string[]): string {
  const lower = name.toLowerCase()
  let out = name
  for (const s of lowerSecrets) {
    if (s === '') continue
    for (let at = lower.indexOf(s); at >= 0; at = lower.indexOf(s, at + s.length))
      out = out.slice(0, at) + '*'.repeat(s.length) + out.slice(at + s.length)
  }
  return out
}

/**
 * A flat `[name, value, …]` answer head with every secret masked in place, in values and in names
 * (an origin may echo a value as a field name), in any case there: `*` is a token character.
 */
export function maskFields(fields: string[], secrets: readonly string[]): void {
  const lower = secrets.map((x) => x.toLowerCase())
  for (let i = 0; i < fields.length; i += 2) {
    fields[i] = maskName(fields[i] as string, lower)
    fields[i + 1] = maskText(fields[i + 1] as string, secrets)
  }
}

export function createSecretMasker(secrets: readonly Buffer[]): SecretMasker {
  const keep = Math.max(0, ...secrets.map((s) => s.length)) - 1
  let held: Buffer = Buffer.alloc(0)
  return {
    push(chunk) {
      const data = maskSecrets(held.length === 0 ? chunk : Buffer.concat([held, chunk]), secrets)
      const cut = Math.max(0, data.length - keep)
      held = data.subarray(cut)
      return data.subarray(0, cut)
    },
    flush() {
      const rest = maskSecrets(held, secrets)
      held = Buffer.alloc(0)
      return rest
    },
  }
}
