/**
 * Environment overrides (SPEC §3), applied in this one place to the validated
 * raw config, before compile. PORTCULLIS_CONFIG is read by resolveConfigPath
 * and PORTCULLIS_ADMIN_TOKEN by the admin server; neither belongs in config.
 * A malformed value is a config error naming the variable.
 */
import { redisUrlProblem } from '../redis/url.js'
import type { ConfigIssue } from '../errors.js'
import { normalizeHost } from '../net/host.js'
import { LOG_LEVELS, type RawConfig } from './schema.js'

export type EnvResult =
  { readonly ok: true; readonly config: RawConfig } | { readonly ok: false; readonly issues: readonly ConfigIssue[] }

export function applyEnvOverrides(raw: RawConfig, env: NodeJS.ProcessEnv): EnvResult {
  const issues: ConfigIssue[] = []
  const bad = (name: string, path: string, message: string): void => {
    issues.push({ file: `$${name}`, line: 1, col: 1, path, message })
  }
  let config = raw
  const redisUrl = env.PORTCULLIS_REDIS_URL
  if (redisUrl !== undefined && redisUrl !== '') {
    const problem = redisUrlProblem(redisUrl)
    if (problem !== null) {
      bad('PORTCULLIS_REDIS_URL', 'telemetry.redis.url', problem)
    } else {
      const t = config.telemetry
      config = { ...config, telemetry: { ...t, redis: { ...t.redis, url: redisUrl } } }
    }
  }
  const level = env.PORTCULLIS_LOG_LEVEL
  if (level !== undefined && level !== '') {
    if ((LOG_LEVELS as readonly string[]).includes(level)) {
      const t = config.telemetry
      config = { ...config, telemetry: { ...t, log: { ...t.log, level: level as (typeof LOG_LEVELS)[number] } } }
    } else {
      bad('PORTCULLIS_LOG_LEVEL', 'telemetry.log.level', `'${level}' is not one of ${LOG_LEVELS.join(', ')}`)
    }
  }
  const listen = env.PORTCULLIS_LISTEN
  if (listen !== undefined && listen !== '') {
    const parsed = parseListen(listen, config.listen.host)
    if (parsed) config = { ...config, listen: { ...config.listen, ...parsed } }
    else bad('PORTCULLIS_LISTEN', 'listen', `'${listen}' is not 'host:port', '[v6]:port' or 'port'`)
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, config }
}

/** `127.0.0.1:3128`, `[::1]:3128`, `0.0.0.0:8080` or just `3128` (keeping the configured host). */
export function parseListen(text: string, defaultHost: string): { host: string; port: number } | null {
  let hostText: string | undefined
  let portText: string
  const v6 = /^\[([^\]]+)\]:([0-9]+)$/.exec(text)
  if (v6) {
    hostText = v6[1]
    portText = v6[2] ?? ''
  } else if (/^[0-9]+$/.test(text)) {
    portText = text
  } else {
    const m = /^([^:\s]+):([0-9]+)$/.exec(text)
    if (!m) return null
    hostText = m[1]
    portText = m[2] ?? ''
  }
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null
  if (hostText === undefined) return { host: defaultHost, port }
  const host = normalizeHost(hostText)
  return host === null ? null : { host, port }
}
