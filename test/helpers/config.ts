import { createHash } from 'node:crypto'

export const TOKEN = 'secret-token-for-ci'
export const TOKEN_HASH = `sha256:${createHash('sha256').update(TOKEN).digest('hex')}`

/**
 * The upstream section every integration test starts from: test names pinned
 * to loopback, 127.0.0.1 exempt from the private-address block (127.0.0.2 is
 * not, so it exercises the block end to end without leaving the machine).
 */
export function upstreamYaml(ports: readonly number[], extra = ''): string {
  return `upstream:
  ports: [${ports.join(', ')}]
  resolve: { origin.test: 127.0.0.1, other.test: 127.0.0.1, paths.test: 127.0.0.1, private.test: 127.0.0.2, xn--bcher-kva.test: 127.0.0.1 }
  allow_private: [127.0.0.1/32]
  connect_timeout_ms: 2000
  header_timeout_ms: 1500
  idle_timeout_ms: 10000
${extra}`
}

export interface OriginYamlOptions {
  /** upstream.ca_file (the test origin's CA, for intercepted or verified upstream TLS). */
  readonly caFile?: string
  /** Only these paths on origin.test (else the whole host). */
  readonly paths?: readonly string[]
  /** Agent ids (Basic auth with TOKEN), each with optional extra inline keys such as `limits: {…}`. Default: `ci`. */
  readonly agents?: Readonly<Record<string, string>>
  /** More top-level sections (telemetry, limits, mode…). */
  readonly extra?: string
}

/** The common case: group `g` may reach origin.test on `ports` (optionally only `paths`), nothing else; agent `ci` is in it. */
export function originOnlyYaml(ports: readonly number[], opts: OriginYamlOptions = {}): string {
  const paths = opts.paths ? `\n        paths: ${JSON.stringify(opts.paths)}` : ''
  const agents = Object.entries(opts.agents ?? { ci: '' })
    .map(([id, more]) => `  - { id: ${id}, token: ${TOKEN_HASH}, groups: [g]${more ? `, ${more}` : ''} }`)
    .join('\n')
  return `${upstreamYaml(ports, opts.caFile === undefined ? '' : `  ca_file: ${JSON.stringify(opts.caFile)}`)}
${opts.extra ?? ''}
groups:
  g:
    allow:
      - host: origin.test${paths}
agents:
${agents}
`
}
