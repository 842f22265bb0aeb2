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
