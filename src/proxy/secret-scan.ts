/**
 * `inspect_body` detectors: credentials an agent must not send out, found in
 * a request's target, header values or body. PURE: text in (bytes read as
 * latin1, so any byte sequence scans), the first detector's name out, never
 * the secret itself (the name is what records and bodies show).
 *
 * Each pattern is the issuer's documented token shape (prefix and length),
 * so plain prose and hashes do not trip it; the generic ones need context
 * (`aws_secret_access_key=`, a PEM private-key header). What these cannot see:
 * a secret re-encoded (base64, hex, split across fields) on purpose.
 * Every quantifier is bounded, so no body can make a pattern backtrack for
 * long (a few hundred steps per candidate position at most).
 */

interface Detector {
  readonly name: string
  readonly pattern: RegExp
}

// Token bodies are bounded on the left by a character that cannot continue them (not \b: `key_AKIA…`
// glues a key to `_`, a word character), and need not end at a boundary (a longer run still starts with one).
const DETECTORS: readonly Detector[] = [
  {
    name: 'private_key',
    pattern: /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-\d/,
  },
  { name: 'aws_access_key_id', pattern: /(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Z0-9])/ },
  {
    name: 'aws_secret_access_key',
    pattern: /(?:aws_?)?secret_?access_?key["']?\s{0,8}[:=]\s{0,8}["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/i,
  },
  { name: 'github_token', pattern: /(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36}/ },
  { name: 'github_fine_grained_token', pattern: /(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{82}/ },
  { name: 'gitlab_token', pattern: /(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20}/ },
  { name: 'slack_token', pattern: /(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,250}/ },
  { name: 'google_api_key', pattern: /(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}/ },
  { name: 'stripe_secret_key', pattern: /(?<![A-Za-z0-9])[rs]k_live_[0-9A-Za-z]{24}/ },
  { name: 'npm_token', pattern: /(?<![A-Za-z0-9])npm_[A-Za-z0-9]{36}/ },
  { name: 'anthropic_api_key', pattern: /(?<![A-Za-z0-9])sk-ant-[a-z]{1,10}\d{2}-[A-Za-z0-9_-]{80}/ },
  {
    name: 'openai_api_key',
    pattern:
      /(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,100}T3BlbkFJ[A-Za-z0-9_-]{20}|(?<![A-Za-z0-9])sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{80}/,
  },
]

/** The name of the first credential found in any of `texts`, or null. */
export function findSecret(texts: readonly string[]): string | null {
  for (const text of texts) {
    if (text.length < 16) continue
    for (const d of DETECTORS) if (d.pattern.test(text)) return d.name
  }
  return null
}

/** Every detector's name (docs, tests). */
export const SECRET_DETECTORS: readonly string[] = DETECTORS.map((d) => d.name)

/** `text` with every credential found replaced by `<redacted:kind>` (for records of requests that carried one). */
export function redactSecrets(text: string): string {
  let out = text
  for (const d of DETECTORS)
    out = out.replace(new RegExp(d.pattern.source, `${d.pattern.flags}g`), `<redacted:${d.name}>`)
  return out
}
