/** The SPEC's closed set of decision reasons, verbatim. Nothing else may appear in a header, log or metric. */
export const REASONS = [
  'allowed',
  'denied_no_rule',
  'denied_by_rule',
  'denied_port',
  'denied_method',
  'denied_path',
  'denied_private_address',
  'denied_sni_mismatch',
  'denied_host_mismatch',
  'denied_auth_required',
  'denied_auth_invalid',
  'denied_rate_limited',
  'denied_secret_detected',
  'denied_git_push',
  'denied_repo_write',
  'denied_package',
  'denied_internal_error',
  'upstream_error',
] as const

export type Reason = (typeof REASONS)[number]
export type DenyReason = Exclude<Reason, 'allowed'>

export function isReason(s: string): s is Reason {
  return (REASONS as readonly string[]).includes(s)
}

export function assertNever(x: never): never {
  throw new Error(`unreachable: ${String(x)}`)
}
