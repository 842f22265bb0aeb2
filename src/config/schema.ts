/**
 * THE schema of portcullis.yaml (SPEC §3): shape, defaults and the RawConfig
 * type. Every object is strict, so a misspelt key (`alow:`) is an error, not
 * a silently ignored rule. Semantic checks (host patterns, CIDRs, presets,
 * duplicate ids…) live in compile.ts, which reports through the same
 * ConfigError.
 */
import { isIP } from 'node:net'
import { HOP_BY_HOP } from '../net/hop-fields.js'
import { z } from 'zod'
import { parseDurationMs } from './duration.js'
import { isApprovalTtl } from '../policy/approvals.js'
import { parseSizeBytes } from '../byte-size.js'
import { parseAuthority } from '../net/host.js'

const port = z.number().int().min(1).max(65535)
// Port 0 (an ephemeral port) is allowed for listeners: tests start instances on 127.0.0.1:0.
const listenPort = z.number().int().min(0).max(65535)
/**
 * An address to listen on: an IP literal, or a host name (`localhost`). Four dotted numbers are an
 * IPv4 address or nothing: `999.1.1.1` would pass `check` and fail only at start.
 */
const listenHost = z
  .string()
  .min(1)
  .refine(
    (h) => (/^[0-9.]+$/.test(h) ? isIP(h) === 4 : isIP(h) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(h)),
    'an IP address (127.0.0.1, 0.0.0.0, ::) or a host name',
  )
const endpoint = (defaultPort: number) =>
  z.strictObject({ host: listenHost.default('127.0.0.1'), port: listenPort.default(defaultPort) }).prefault({})
const positiveInt = z.number().int().positive()
/** Node's timers hold at most 2^31−1 ms (24.8 days); a longer one fires after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1
const timeoutMs = positiveInt.max(MAX_TIMER_MS, 'at most 2147483647 (24.8 days), the longest timer Node keeps')
/** A limit: a number, or null for "no limit". */
const limit = positiveInt.nullable()
// Group names and agent ids appear in rule ids (`builders.allow[2]`), so keep them simple and unambiguous.
const groupName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'use letters, digits, - and _ only')
const agentId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'start with a letter or digit, then letters, digits, ., - and _ only')
const presetName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lower-case letters, digits, - and _ only')
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
/**
 * The longest max_sandbox_ttl. A revocation of a credential never seen is kept this long past its id's
 * time: were it kept only for the max_sandbox_ttl of the day, lowering and raising it again would bring
 * a revoked credential back.
 */
export const MAX_SANDBOX_TTL_MS = 30 * 24 * 3600_000

const duration = z.string().refine((t) => parseDurationMs(t) !== null, 'a duration like 30m, 24h or 7d')

const injectHeader = z.strictObject({
  env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
  format: z
    .string()
    .includes('{}', { message: "format must contain '{}' where the secret goes" })
    .refine((f) => !/[\0-\x08\x0a-\x1f\x7f]/.test(f), 'format may hold no line break or control character')
    .optional(),
})

/**
 * Fields the proxy frames, routes or strips on each hop: injected, they would set the body's length
 * for the upstream (a Content-Length shorter than the body leaves the rest as a second, undecided
 * request), or be dropped unsaid.
 */
const NOT_INJECTABLE = new Set([...HOP_BY_HOP, 'content-length', 'host', 'via'])
const injectHeaders = z
  .record(z.string().regex(/^[A-Za-z0-9-]+$/, 'an HTTP header name'), injectHeader)
  .superRefine((fields, ctx) => {
    for (const name of Object.keys(fields))
      if (NOT_INJECTABLE.has(name.toLowerCase()))
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message:
            'the proxy frames and routes each hop itself: Content-Length, Transfer-Encoding, Host, Via and hop-by-hop fields cannot be injected',
        })
  })

// SPEC §11: a supply-chain guard on a registry's packages.
const packageEntries = z.array(z.string())
const packagesSchema = z.strictObject({
  deny: packageEntries.default([]),
  // null: every package not denied; a list: only these.
  allow: packageEntries.nullable().default(null),
  deny_file: z.string().min(1).optional(),
  min_age: duration.optional(),
  min_age_exempt: packageEntries.default([]),
})
// On a host rule (a private registry) the registry's kind is named; `index` is where a PyPI file's
// upload time is looked up (default: the rule's own host).
const hostPackagesSchema = packagesSchema.extend({
  registry: z.enum(['npm', 'pypi']),
  index: z.string().optional(),
})

export const hostRuleSchema = z.strictObject({
  host: z.string(),
  ports: z.array(port).min(1).optional(),
  methods: z
    .array(z.string().regex(/^[A-Z]+$/, 'an upper-case HTTP method like GET'))
    .min(1)
    .optional(),
  paths: z.array(z.string()).min(1).optional(),
  intercept: z.literal('never').optional(),
  inject_headers: injectHeaders.optional(),
  inspect_body: z.boolean().optional(),
  packages: hostPackagesSchema.optional(),
})

const access = z.enum(['read', 'write'])
const presetRule = z.strictObject({ preset: z.string(), packages: packagesSchema.optional() })
const size = z
  .union([z.number(), z.string()])
  .refine((v) => parseSizeBytes(v) !== null, 'a size like 100MiB, 50MB or a number of bytes')
// bytes_per_day in bytes or as a size (`5GiB`), as push.max_pack_bytes takes it; null: no limit.
const byteLimit = z
  .union([z.number(), z.string()])
  .refine((v) => (parseSizeBytes(v) ?? 0) >= 1, 'a size like 5GiB, 500MB or a number of bytes (at least 1)')
  .transform((v) => parseSizeBytes(v) as number)
  .nullable()

const limitsSchema = z.strictObject({
  requests_per_minute: limit.optional(),
  concurrent_connections: limit.optional(),
  bytes_per_day: byteLimit.optional(),
})

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
// SPEC §8. Defaults (branches agent/{agent}/**, no force, delete or tags, 100 MiB) are applied in compile.ts.
const pushSchema = z.strictObject({
  branches: z.array(z.string().min(1)).min(1).optional(),
  force: z.boolean().optional(),
  delete: z.boolean().optional(),
  tags: z.boolean().optional(),
  max_pack_bytes: size.optional(),
})
const apiSchema = z.strictObject({
  pulls: z.enum(['none', 'create']).optional(),
  issues: z.enum(['none', 'comment', 'write']).optional(),
  graphql_mutations: z.array(z.string()).optional(),
})
const githubRule = z.strictObject({
  github: z.strictObject({
    repos: z.array(z.string()).min(1),
    // `github-agent`: access write, push to agent/{agent}/**, open pull requests, comment.
    preset: z.literal('github-agent').optional(),
    access: access.optional(),
    push: pushSchema.optional(),
    api: apiSchema.optional(),
    token_env: envName.optional(),
  }),
})
const gitRule = z.strictObject({
  git: z.strictObject({
    host: z.string(),
    repos: z.array(z.string()).min(1),
    access: access.default('read'),
    push: pushSchema.optional(),
    token_env: envName.optional(),
  }),
})

export const ruleSchema = z.union([hostRuleSchema, presetRule, githubRule, gitRule])
const ruleList = z.array(ruleSchema)

const groupSchema = z.strictObject({
  allow: ruleList.default([]),
  deny: ruleList.default([]),
  limits: limitsSchema.optional(),
})

const agentSchema = z.strictObject({
  id: agentId,
  token: z
    .string()
    .regex(/^sha256:[0-9a-fA-F]{64}$/, "must be 'sha256:' + 64 hex digits (see `portcullis token hash`)")
    .optional(),
  source_cidrs: z.array(z.string()).default([]),
  groups: z.array(z.string()).default([]),
  mode: z.enum(['enforce', 'audit']).optional(),
  limits: limitsSchema.optional(),
  allow: ruleList.default([]),
  deny: ruleList.default([]),
  // SPEC §9: a template from which short-lived sandbox credentials are issued.
  sandboxes: z.boolean().default(false),
})

const ipOrList = z.union([z.string(), z.array(z.string()).min(1)])

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: listenHost.default('127.0.0.1'),
      port: listenPort.default(3128),
      // `auto`: what the descriptor limit allows (two descriptors per proxied connection, some kept spare).
      max_connections: z.union([positiveInt, z.literal('auto')]).default('auto'),
      max_unauthenticated_per_source: positiveInt.default(128),
      unauthenticated_denials_per_minute: positiveInt.default(600),
    })
    .prefault({}),
  admin: endpoint(9090),
  // Worker processes sharing the listeners (runtime/workers.ts); `auto`: one per available CPU. More than one needs Redis.
  workers: z.union([positiveInt, z.literal('auto')]).default(1),
  mode: z.enum(['enforce', 'audit']).default('enforce'),
  tls: z
    .strictObject({
      ca_cert: z.string().default('certs/ca.pem'),
      ca_key: z.string().default('certs/ca-key.pem'),
      intercept: z.enum(['auto', 'never', 'always']).default('auto'),
      explain_denials: z.enum(['auto', 'always', 'never']).default('auto'),
    })
    .prefault({}),
  upstream: z
    .strictObject({
      ports: z.array(port).min(1).default([80, 443]),
      resolve: z.record(z.string(), ipOrList).default({}),
      allow_private: z.array(z.string()).default([]),
      ca_file: z.string().nullable().default(null),
      connect_timeout_ms: timeoutMs.default(10_000),
      header_timeout_ms: timeoutMs.default(10_000),
      response_header_timeout_ms: timeoutMs.default(10_000),
      idle_timeout_ms: timeoutMs.default(300_000),
      dns_cache_ttl_ms: z.number().int().min(0).max(MAX_TIMER_MS).default(10_000),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      log: z
        .strictObject({
          level: z.enum(LOG_LEVELS).default('info'),
          format: z.enum(['json', 'ecs']).default('json'),
        })
        .prefault({}),
      memory: z.strictObject({ size: positiveInt.default(10_000) }).prefault({}),
      redis: z
        .strictObject({
          url: z.string().nullable().default(null),
          stream: z.string().min(1).default('portcullis:events'),
          maxlen: positiveInt.default(1_000_000),
        })
        .prefault({}),
    })
    .prefault({}),
  limits: z
    .strictObject({
      requests_per_minute: limit.default(1200),
      concurrent_connections: limit.default(64),
      bytes_per_day: byteLimit.default(null),
    })
    .prefault({}),
  approvals: z
    .strictObject({
      file: z.string().default('config/approvals.yaml'),
      // What the admin API gives an approval made without a ttl: the range it accepts for one.
      default_ttl: duration
        .refine((t) => isApprovalTtl(parseDurationMs(t)), 'from 1s to 90d, as an approval ttl')
        .default('24h'),
    })
    .prefault({}),
  // SPEC §9: the key that signs sandbox credentials (base64, ≥ 32 bytes, the same on every instance).
  identity: z
    .strictObject({
      signing_key_env: envName.default('PORTCULLIS_SIGNING_KEY'),
      previous_signing_key_env: envName.nullable().default(null),
      max_sandbox_ttl: duration
        .refine((t) => (parseDurationMs(t) ?? 0) >= 1000, 'at least 1s: no sandbox credential could be issued')
        .refine(
          (t) => (parseDurationMs(t) ?? 0) <= MAX_SANDBOX_TTL_MS,
          'at most 30d: sandbox credentials are short-lived, and a revocation is kept as long as one may live',
        )
        .default('24h'),
      // Where sandboxes reach the proxy (host:port), for the proxy_url of issued credentials; null: listen.
      sandbox_proxy: z
        .string()
        .refine(
          (a) => parseAuthority(a) !== null,
          'HOST:PORT, as a sandbox reaches the proxy (an IPv6 address in brackets: [fd00::1]:3128)',
        )
        .nullable()
        .default(null),
    })
    .prefault({}),
  // SPEC §10: policy tests; absent: `<config>.tests.yaml` beside the config when present; null: none.
  tests_file: z.string().min(1).nullable().optional(),
  presets: z.record(presetName, z.array(hostRuleSchema).min(1)).default({}),
  groups: z.record(groupName, groupSchema).default({}),
  agents: z.array(agentSchema).default([]),
})

export type RawConfig = z.output<typeof configSchema>
export type RawRule = z.output<typeof ruleSchema>
export type RawHostRule = z.output<typeof hostRuleSchema>
export type RawAgent = z.output<typeof agentSchema>
export type RawLimits = z.output<typeof limitsSchema>
export type RawPush = z.output<typeof pushSchema>
export type RawPackages = z.output<typeof packagesSchema>
export type RawApi = z.output<typeof apiSchema>
