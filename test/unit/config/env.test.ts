import t from 'tap'
import { applyEnvOverrides, parseListen } from '../../../src/config/env.js'
import { configSchema, type RawConfig } from '../../../src/config/schema.js'

const RAW: RawConfig = configSchema.parse({
  agents: [{ id: 'solo', source_cidrs: ['127.0.0.1/32'], allow: [{ host: 'example.org' }] }],
})

t.test('no PORTCULLIS_* variable: the config is returned as it was', async (t) => {
  const r = applyEnvOverrides(RAW, { HOME: '/root', PORTCULLIS_CONFIG: 'x.yaml', PORTCULLIS_ADMIN_TOKEN: 't' })
  t.ok(r.ok && r.config === RAW, 'the same object: PORTCULLIS_CONFIG and the admin token are not config')
})

t.test('each variable overrides its one key and nothing else', async (t) => {
  const r = applyEnvOverrides(RAW, {
    PORTCULLIS_REDIS_URL: 'redis://r:6379',
    PORTCULLIS_LOG_LEVEL: 'debug',
    PORTCULLIS_LISTEN: '[::1]:3129',
  })
  if (!r.ok) throw new Error('expected overrides to apply')
  t.equal(r.config.telemetry.redis.url, 'redis://r:6379')
  t.equal(r.config.telemetry.redis.stream, RAW.telemetry.redis.stream, 'the rest of telemetry.redis is kept')
  t.equal(r.config.telemetry.log.level, 'debug')
  t.equal(r.config.telemetry.log.format, RAW.telemetry.log.format)
  t.strictSame([r.config.listen.host, r.config.listen.port], ['::1', 3129])
  t.equal(RAW.telemetry.log.level, 'info', 'the input is not modified')
})

t.test('every bad variable is reported at once, named as the file', async (t) => {
  const r = applyEnvOverrides(RAW, {
    PORTCULLIS_REDIS_URL: 'http://u:hunter2@x',
    PORTCULLIS_LOG_LEVEL: 'loud',
    PORTCULLIS_LISTEN: 'nowhere',
  })
  t.notOk(r.ok)
  if (r.ok) return
  t.match(r.issues, [
    { file: '$PORTCULLIS_REDIS_URL', line: 1, col: 1, path: 'telemetry.redis.url', message: /not a Redis URL/ },
    { file: '$PORTCULLIS_LOG_LEVEL', path: 'telemetry.log.level', message: /'loud' is not one of fatal, error/ },
    { file: '$PORTCULLIS_LISTEN', path: 'listen', message: /'nowhere' is not 'host:port'/ },
  ])
  t.notMatch(JSON.stringify(r.issues), /hunter2/, 'a password in the URL is not echoed')
})

t.test('parseListen', async (t) => {
  const CASES: ReadonlyArray<readonly [string, { host: string; port: number } | null, string]> = [
    ['127.0.0.1:3128', { host: '127.0.0.1', port: 3128 }, 'host:port'],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }, 'port 0 (ephemeral)'],
    ['[::1]:8080', { host: '::1', port: 8080 }, '[v6]:port'],
    ['3128', { host: 'default.host', port: 3128 }, 'a bare port keeps the configured host'],
    ['Proxy.Example.:80', { host: 'proxy.example', port: 80 }, 'the host is normalised'],
    ['localhost:65536', null, 'a port out of range'],
    ['::1:8080', null, 'an IPv6 literal without brackets'],
    ['host:', null, 'no port'],
    ['host:8080:1', null, 'two ports'],
    ['[::1]', null, 'brackets without a port'],
    ['ex ample:80', null, 'a space'],
  ]
  for (const [text, expected, behaviour] of CASES)
    t.strictSame(parseListen(text, 'default.host'), expected, `${behaviour}: '${text}'`)
})
