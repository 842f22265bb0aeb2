import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import ipaddr from 'ipaddr.js'
import { parse } from 'yaml'

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

/**
 * Is `text` an address, or a network in CIDR form, reaching outside 127.0.0.0/8 and ::1? False for
 * what is no address at all (a config the proxy refuses anyway: tests of bad configs start it too).
 */
function outsideLoopback(text: string): boolean {
  const [addr = '', bits] = text
    .trim()
    .replace(/^\[|\]$/g, '')
    .split('/')
  if (!ipaddr.isValid(addr)) return false
  const ip = ipaddr.process(addr)
  const prefix = bits === undefined ? (ip.kind() === 'ipv4' ? 32 : 128) : Number(bits)
  return ip.kind() === 'ipv4'
    ? ip.range() !== 'loopback' || prefix < 8
    : (ip as ipaddr.IPv6).toNormalizedString() !== '0:0:0:0:0:0:0:1' || prefix !== 128
}

/**
 * Throws unless every place a config could send a started proxy is loopback: each upstream.resolve
 * pin in 127.0.0.0/8 or ::1, each upstream.allow_private network inside them, a Redis URL's hosts
 * too. Every helper that starts a real proxy (in process, spawned, or for the bench) calls it, so no
 * test can aim one anywhere else; the loopback-only network namespace (scripts/test.sh) is the second
 * fence. Addresses elsewhere in test/ are classified or parsed, never dialled.
 */
export function assertLoopbackOnly(yamlText: string, where: string): void {
  let parsed: unknown
  try {
    parsed = parse(yamlText)
  } catch {
    return // Not YAML: the proxy refuses it before reaching anything (tests of broken configs).
  }
  if (parsed === null || typeof parsed !== 'object') return
  const doc = parsed as {
    upstream?: { resolve?: Record<string, string | string[]>; allow_private?: string[] }
    telemetry?: { redis?: { url?: string | null } }
  }
  const wrong: string[] = []
  for (const [name, pins] of Object.entries(doc.upstream?.resolve ?? {}))
    for (const pin of Array.isArray(pins) ? pins : [pins])
      if (outsideLoopback(String(pin))) wrong.push(`${name}: ${pin}`)
  for (const net of doc.upstream?.allow_private ?? [])
    if (outsideLoopback(String(net))) wrong.push(`allow_private ${net}`)
  const url = doc.telemetry?.redis?.url
  if (typeof url === 'string')
    for (const hostPort of url
      .replace(/^[a-z+]+:\/\/(?:[^@/]*@)?/, '')
      .split('/')[0]
      ?.split(',') ?? []) {
      const host = hostPort.replace(/:\d+$/, '')
      if (host !== 'localhost' && (outsideLoopback(host) || !ipaddr.isValid(host.replace(/^\[|\]$/g, ''))))
        wrong.push(`redis ${hostPort}`)
    }
  if (wrong.length > 0)
    throw new Error(`${where}: a test proxy may reach loopback only (127.0.0.0/8, ::1), not ${wrong.join(', ')}`)
}
