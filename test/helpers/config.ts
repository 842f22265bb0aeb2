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

/** The common case: agent `ci` (Basic auth with TOKEN) may reach origin.test on `ports`, nothing else. */
export function originOnlyYaml(ports: readonly number[], caFile?: string): string {
  return `${upstreamYaml(ports, caFile === undefined ? '' : `  ca_file: ${JSON.stringify(caFile)}`)}
groups:
  g:
    allow:
      - host: origin.test
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`
}
