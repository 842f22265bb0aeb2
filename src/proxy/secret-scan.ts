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

const DETECTORS: readonly Detector[] = [
  { name: 'private_key', pattern: /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/ },
  { name: 'aws_access_key_id', pattern: /\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/ },
  { name: 'aws_secret_access_key', pattern: /aws_?secret_?access_?key["']?\s{0,8}[:=]\s{0,8}["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/i },
  { name: 'github_token', pattern: /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/ },
  { name: 'github_fine_grained_token', pattern: /\bgithub_pat_[A-Za-z0-9_]{82}\b/ },
  { name: 'gitlab_token', pattern: /\bglpat-[A-Za-z0-9_-]{20,64}/ },
  { name: 'slack_token', pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,250}/ },
  { name: 'google_api_key', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/ },
  { name: 'stripe_secret_key', pattern: /\b[rs]k_live_[0-9A-Za-z]{24,250}/ },
  { name: 'npm_token', pattern: /\bnpm_[A-Za-z0-9]{36}\b/ },
  { name: 'anthropic_api_key', pattern: /\bsk-ant-[a-z]{1,10}\d{2}-[A-Za-z0-9_-]{80,250}/ },
  { name: 'openai_api_key', pattern: /\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,100}T3BlbkFJ[A-Za-z0-9_-]{20,100}|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{80,250}/ },
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
