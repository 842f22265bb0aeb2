import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The config writer the tests and the bench (bench/lib) share, and the YAML sections integration
 * tests build their configs from.
 */

/** The `sha256:…` form of a token, as `agents[].token` takes it. */
export function tokenHash(token: string): string {
  return `sha256:${createHash('sha256').update(token).digest('hex')}`
}

export const TOKEN = 'secret-token-for-ci'
export const TOKEN_HASH = tokenHash(TOKEN)

export interface ConfigFileOptions {
  /** The file's name in the directory (default portcullis.yaml). */
  readonly file?: string
  /** Default 0: an ephemeral port (its number is in the PC_STARTED log line). */
  readonly listenPort?: number
  readonly adminPort?: number
}

/**
 * The sections every written config starts with, unless `body` sets them: loopback listeners, and
 * the CA (ca.pem, ca-key.pem) and approvals file in `dir`.
 */
export function configHead(dir: string, body: string, o: ConfigFileOptions = {}): string {
  return [
    /^listen:/m.test(body) ? '' : `listen: { host: 127.0.0.1, port: ${o.listenPort ?? 0} }`,
    /^admin:/m.test(body) ? '' : `admin: { host: 127.0.0.1, port: ${o.adminPort ?? 0} }`,
    /^tls:/m.test(body)
      ? ''
      : `tls: { ca_cert: ${JSON.stringify(join(dir, 'ca.pem'))}, ca_key: ${JSON.stringify(join(dir, 'ca-key.pem'))} }`,
    /^approvals:/m.test(body) ? '' : `approvals: { file: ${JSON.stringify(join(dir, 'approvals.yaml'))} }`,
  ]
    .filter(Boolean)
    .join('\n')
}

/** A config whose files all live in `dir` (configHead, then `body`); returns its path. */
export function writeConfig(dir: string, body: string, o: ConfigFileOptions = {}): string {
  const file = join(dir, o.file ?? 'portcullis.yaml')
  writeFileSync(file, `${configHead(dir, body, o)}\n${body}\n`)
  return file
}

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

export interface PinnedUpstreamOptions {
  readonly ports: readonly number[]
  /** Names pinned to 127.0.0.1 (real names such as github.com: the proxy still dials loopback only). */
  readonly hosts: readonly string[]
  /** upstream.ca_file: the loopback origin's CA. */
  readonly caFile?: string
  /** upstream timeouts in ms; each one left out keeps the proxy's default. */
  readonly timeouts?: { readonly connect?: number; readonly header?: number; readonly idle?: number }
}

/** Upstream timeouts for tests driving real clients (git, npm), which take longer to answer than curl. */
export const CLIENT_TIMEOUTS = { connect: 2000, header: 5000, idle: 10_000 } as const

/** An upstream section for origins that stand in for named hosts (a registry, a git host), 127.0.0.1 exempt. */
export function pinnedUpstreamYaml(o: PinnedUpstreamOptions): string {
  const timeout = (key: string, ms: number | undefined): string[] => (ms === undefined ? [] : [`  ${key}: ${ms}`])
  return `${[
    'upstream:',
    `  ports: [${o.ports.join(', ')}]`,
    `  resolve: { ${o.hosts.map((h) => `${h}: 127.0.0.1`).join(', ')} }`,
    '  allow_private: [127.0.0.1/32]',
    ...(o.caFile === undefined ? [] : [`  ca_file: ${JSON.stringify(o.caFile)}`]),
    ...timeout('connect_timeout_ms', o.timeouts?.connect),
    ...timeout('header_timeout_ms', o.timeouts?.header),
    ...timeout('idle_timeout_ms', o.timeouts?.idle),
  ].join('\n')}\n`
}

/**
 * Group `g` allowing `rules` and agent `ci` (Basic auth with TOKEN) in it. Each rule is one list
 * item's YAML (`host: origin.test`); its further lines are indented under the item.
 */
export function groupYaml(rules: readonly string[]): string {
  const items = rules.map((r) => `      - ${r.split('\n').join('\n        ')}`)
  return `groups:
  g:
    allow:
${items.join('\n')}
agents:
  - id: ci
    token: ${TOKEN_HASH}
    groups: [g]
`
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
