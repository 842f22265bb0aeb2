import t from 'tap'
import { originOnlyYaml } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { until } from '../helpers/poll.js'
import { startRedis } from '../helpers/redis.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/** Redis credentials as an operator writes them in `telemetry.redis.url`: what is said of them, and where. */

const PASSWORD = 's3kr1t-in-the-query'

t.test('a password given as a query parameter authenticates and is never logged', async (t) => {
  const redis = await startRedis(t, ['--requirepass', PASSWORD])
  const origin = await startHttpOrigin(t)
  const url = `${redis.url}/0?password=${PASSWORD}`
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      extra: `telemetry:\n  redis: { url: ${JSON.stringify(url)}, stream: "pc:events", maxlen: 1000 }`,
    }),
  )
  const lines = (code: string): string[] => pc.logLines().filter((l) => l.includes(`"${code}"`))
  t.ok(await until(() => lines('PC_REDIS_UP').length > 0), 'the query password authenticates')
  t.match(lines('PC_REDIS_CONFIGURED')[0], /\?password=\*\*\*/, 'the URL is shown with the password hidden')
  t.match(lines('PC_REDIS_UP')[0], /\?password=\*\*\*/)
  t.notMatch(pc.logLines().join('\n'), PASSWORD, 'no log line holds the password')
  t.notMatch(await (await fetch(`${pc.adminUrl}/healthz`)).text(), PASSWORD, 'nor /healthz')
})

t.test('a refused password is named on /healthz as what it is, not as Redis unreachable', async (t) => {
  const redis = await startRedis(t, ['--requirepass', PASSWORD])
  const origin = await startHttpOrigin(t)
  for (const [url, answer] of [
    [`redis://:not-the-password@127.0.0.1:${redis.port}/0`, /\(WRONGPASS invalid username-password pair/],
    [`redis://127.0.0.1:${redis.port}/0`, /\(NOAUTH /],
  ] as const) {
    const pc = await startPortcullis(
      t,
      originOnlyYaml([origin.port], {
        extra: `telemetry:\n  redis: { url: ${JSON.stringify(url)}, stream: "pc:events", maxlen: 1000 }`,
      }),
    )
    const warnings = async (): Promise<string[]> =>
      ((await (await fetch(`${pc.adminUrl}/healthz`)).json()) as { warnings: string[] }).warnings
    t.ok(
      await until(async () => (await warnings()).some((w) => w.includes('PC_LIMITS_LOCAL_FALLBACK'))),
      'limits fell back',
    )
    const said = (await warnings()).find((w) => w.includes('PC_LIMITS_LOCAL_FALLBACK')) ?? ''
    t.match(said, /^Redis refuses the credentials of telemetry\.redis\.url /, 'an auth failure is said as one')
    t.match(said, answer, "with Redis's own answer")
    t.notMatch(said, /unreachable|not-the-password/)
    await pc.app.close()
  }
})
