import { ConfigError } from '../errors.js'
import { parseAuthority } from '../net/host.js'
import type { RawConfig } from './schema.js'

/**
 * PORTCULLIS_* overrides, applied in this one place to the validated raw
 * config before compile. (PORTCULLIS_CONFIG picks the file, resolveConfigPath;
 * PORTCULLIS_ADMIN_TOKEN is read by the admin server and never enters config.)
 */
export function applyEnvOverrides(raw: RawConfig, env: NodeJS.ProcessEnv, file: string): RawConfig {
  let out = raw
  if (env.PORTCULLIS_REDIS_URL) out = { ...out, telemetry: { ...out.telemetry, redis: { ...out.telemetry.redis, url: env.PORTCULLIS_REDIS_URL } } }
  const level = env.PORTCULLIS_LOG_LEVEL
  if (level) {
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw envError(file, 'PORTCULLIS_LOG_LEVEL', `'${level}' is not one of fatal, error, warn, info, debug, trace, silent`)
    out = { ...out, telemetry: { ...out.telemetry, log: { ...out.telemetry.log, level: level as RawConfig['telemetry']['log']['level'] } } }
  }
  const listen = env.PORTCULLIS_LISTEN
  if (listen) out = { ...out, listen: parseListen(listen, file) }
  return out
}

/** `host:port`, `[::1]:port` or a bare `port`. */
function parseListen(text: string, file: string): RawConfig['listen'] {
  if (/^\d{1,5}$/.test(text) && Number(text) <= 65535) return { host: '127.0.0.1', port: Number(text) }
  const m = /^(.*):(\d{1,5})$/.exec(text)
  const hp = m && Number(m[2]) <= 65535 ? parseAuthority(`${m[1] === '' ? '0.0.0.0' : m[1]}:${m[2] === '0' ? '1' : m[2]}`) : null
  if (!m || !hp) throw envError(file, 'PORTCULLIS_LISTEN', `'${text}' is not host:port, [ipv6]:port or a port`)
  return { host: hp.host, port: Number(m[2]) }
}

function envError(file: string, name: string, message: string): ConfigError {
  return new ConfigError([{ file: `${file} (environment)`, line: 0, col: 0, path: name, message }])
}
