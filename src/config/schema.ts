import { z } from 'zod'

/**
 * THE schema of portcullis.yaml (SPEC §3). Objects are strict: an unknown key
 * (`alow:`) is an error, not silently ignored. Semantic checks that need more
 * than shape (host patterns, CIDRs, presets, duplicate ids) live in compile.ts
 * and report through the same ConfigError.
 */
const Port = z.number().int().min(1).max(65535)
const Method = z.string().regex(/^[A-Za-z]{1,20}$/, 'an HTTP method token like GET')
const Sha256Token = z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be 'sha256:' followed by 64 lower-case hex digits (portcullis token hash)")
const Mode = z.enum(['enforce', 'audit'])
const Duration = z.string().regex(/^\s*\d{1,9}\s*(ms|s|m|h|d|w)\s*$/i, 'a duration like 30m, 24h or 7d')
const Count = z.number().int().min(0).nullable()

const Listen = z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65535) })

const InjectHeaders = z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name'), z.strictObject({ env: z.string().min(1), format: z.string().default('{}') }))

const HostFields = {
  host: z.string(),
  ports: z.array(Port).min(1).optional(),
  methods: z.array(Method).min(1).optional(),
  paths: z.array(z.string()).min(1).optional(),
  intercept: z.literal('never').optional(),
  inject_headers: InjectHeaders.optional(),
  inspect_body: z.boolean().optional(),
}

export const HostRule = z.strictObject(HostFields)

const Repos = z.array(z.string().regex(/^[A-Za-z0-9_.*-]+\/[A-Za-z0-9_.*-]+$/, "an 'owner/repo' name (globs allowed: 'acme/lib-*')")).min(1)
const Access = z.enum(['read', 'write']).default('read')

/** One rule: exactly one of host, preset, github or git (checked in superRefine so errors name the key). */
export const Rule = z
  .strictObject({
    host: z.string().optional(),
    ports: HostFields.ports,
    methods: HostFields.methods,
    paths: HostFields.paths,
    intercept: HostFields.intercept,
    inject_headers: HostFields.inject_headers,
    inspect_body: HostFields.inspect_body,
    preset: z.string().optional(),
    github: z.strictObject({ repos: Repos, access: Access }).optional(),
    git: z.strictObject({ host: z.string(), repos: Repos, access: Access }).optional(),
  })
  .superRefine((rule, ctx) => {
    const kinds = (['host', 'preset', 'github', 'git'] as const).filter((k) => rule[k] !== undefined)
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: kinds.length === 0 ? 'a rule needs one of host, preset, github or git' : `a rule has exactly one of host, preset, github or git (found ${kinds.join(', ')})` })
      return
    }
    if (kinds[0] !== 'host') {
      for (const k of ['ports', 'methods', 'paths', 'intercept', 'inject_headers', 'inspect_body'] as const) {
        if (rule[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `'${k}' applies to host rules only` })
      }
    }
  })

const Limits = z.strictObject({
  requests_per_minute: Count.optional(),
  concurrent_connections: Count.optional(),
  bytes_per_day: Count.optional(),
})

const Group = z.strictObject({
  allow: z.array(Rule).default([]),
  deny: z.array(Rule).default([]),
  limits: Limits.optional(),
})

const Agent = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, dot, dash and underscore, at most 64'),
  token: Sha256Token.optional(),
  source_cidrs: z.array(z.string()).min(1).optional(),
  groups: z.array(z.string()).default([]),
  mode: Mode.optional(),
  limits: Limits.optional(),
  allow: z.array(Rule).default([]),
  deny: z.array(Rule).default([]),
})

const Resolve = z.record(z.string(), z.union([z.string(), z.array(z.string()).min(1)]))

export const ConfigSchema = z.strictObject({
  listen: Listen.default({ host: '127.0.0.1', port: 3128 }),
  admin: Listen.default({ host: '127.0.0.1', port: 9090 }),
  mode: Mode.default('enforce'),
  tls: z
    .strictObject({
      ca_cert: z.string().min(1).default('certs/ca.pem'),
      ca_key: z.string().min(1).default('certs/ca-key.pem'),
      intercept: z.enum(['auto', 'never', 'always']).default('auto'),
    })
    .default({ ca_cert: 'certs/ca.pem', ca_key: 'certs/ca-key.pem', intercept: 'auto' }),
  upstream: z
    .strictObject({
      ports: z.array(Port).min(1).default([80, 443]),
      resolve: Resolve.default({}),
      allow_private: z.array(z.string()).default([]),
      ca_file: z.string().min(1).nullable().default(null),
      connect_timeout_ms: z.number().int().min(1).default(10_000),
      header_timeout_ms: z.number().int().min(1).default(10_000),
      idle_timeout_ms: z.number().int().min(1).default(300_000),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), format: z.enum(['json', 'ecs']).default('json') }).prefault({}),
      memory: z.strictObject({ size: z.number().int().min(1).max(10_000_000).default(10_000) }).prefault({}),
      redis: z
        .strictObject({ url: z.string().min(1).nullable().default(null), stream: z.string().min(1).default('portcullis:events'), maxlen: z.number().int().min(1).default(1_000_000) })
        .prefault({}),
    })
    .prefault({}),
  limits: z
    .strictObject({
      requests_per_minute: Count.default(1200),
      concurrent_connections: Count.default(64),
      bytes_per_day: Count.default(null),
    })
    .prefault({}),
  approvals: z.strictObject({ file: z.string().min(1).default('config/approvals.yaml'), default_ttl: Duration.default('24h') }).prefault({}),
  presets: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'a lower-case name'), z.array(HostRule).min(1)).default({}),
  groups: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, dash and underscore'), Group).default({}),
  agents: z.array(Agent).default([]),
})

export type RawConfig = z.infer<typeof ConfigSchema>
export type RawRule = z.infer<typeof Rule>
export type RawHostRule = z.infer<typeof HostRule>
export type RawLimits = z.infer<typeof Limits>
