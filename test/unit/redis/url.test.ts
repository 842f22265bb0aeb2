import t from 'tap'
import { clusterTarget, isClusterUrl, redactRedisUrl, redisUrlProblem } from '../../../src/redis/url.js'

t.test('redisUrlProblem accepts what a client can connect with', async (t) => {
  const GOOD: ReadonlyArray<readonly [string, string]> = [
    ['redis://127.0.0.1:6379', 'host and port'],
    ['redis://', 'redis:// alone means localhost:6379'],
    ['rediss://cache.internal', 'TLS, default port'],
    ['REDIS://H:1', 'the scheme is case-insensitive'],
    ['redis://user:p%40ss@h:6379/2', 'credentials and a database'],
    ['redis://:secret@[::1]:6380', 'an IPv6 literal'],
    ['redis+cluster://h1:7000,h2:7001', 'a cluster seed list'],
    ['rediss+cluster://u:p@h1:7000,[::1]:7001/', 'a TLS cluster with credentials'],
  ]
  for (const [url, behaviour] of GOOD) t.equal(redisUrlProblem(url), null, behaviour)
})

t.test('redisUrlProblem refuses the rest, never echoing the password', async (t) => {
  const BAD: ReadonlyArray<readonly [string, RegExp, string]> = [
    ['http://h:6379', /is not a Redis URL/, 'another scheme'],
    ['h:6379', /is not a Redis URL/, 'no scheme'],
    ['u:hunter2@h:6379', /'u:\*\*\*@h:6379' is not a Redis URL/, 'no scheme, with credentials: redacted'],
    ['redis+cluster://', /'' names no host/, 'a cluster needs seeds'],
    ['redis+cluster://h1:1,', /'' names no host/, 'an empty seed'],
    ['redis://h1:1,h2:2', /'h1:1,h2:2' is not a host\[:port\]/, 'a list without +cluster'],
    ['redis://:hunter2@h:99999', /'redis:\/\/:\*\*\*@h:99999': 'h:99999' is not a host/, 'a bad port'],
  ]
  for (const [url, message, behaviour] of BAD) {
    const problem = redisUrlProblem(url)
    t.match(problem, message, behaviour)
    t.notMatch(problem ?? '', /hunter2/, `${behaviour}: no password`)
  }
})

t.test('redactRedisUrl hides the password and keeps the rest', async (t) => {
  const CASES: ReadonlyArray<readonly [string, string, string]> = [
    ['redis://h:6379', 'redis://h:6379', 'no credentials: unchanged'],
    ['redis://user@h:6379', 'redis://user@h:6379', 'a user without password is kept'],
    ['redis://u:pw@h:6379/0', 'redis://u:***@h:6379/0', 'user and password'],
    ['rediss+cluster://:p%40ss@h1:1,h2:2', 'rediss+cluster://:***@h1:1,h2:2', 'a cluster URL, no user'],
    ['redis://u:p:q@h', 'redis://u:***@h', 'a password holding a colon is hidden whole'],
    ['redis://u:p@ss@h', 'redis://u:***@h', 'a password holding an unescaped @ is hidden whole'],
    ['u:pw@h:1', 'u:***@h:1', 'no scheme'],
    ['redis://h:1/0?password=pw', 'redis://h:1/0?password=***', 'a password in the query (ioredis reads it)'],
    [
      'redis://u@h:1/0?db=2&Password=a&sentinelPassword=b&username=u#x',
      'redis://u@h:1/0?db=2&Password=***&sentinelPassword=***&username=u#x',
      'every secret parameter, whatever its case; the rest kept',
    ],
    ['redis://u:pw@h:1?pass%77ord=q', 'redis://u:***@h:1?pass%77ord=***', 'both places; a percent-encoded name'],
    ['redis://h:1/0?password=x@y', 'redis://h:***', 'an unescaped @ in the query: hidden in either reading'],
    ['redis://u:p?password=q@h', 'redis://u:***', 'an unescaped ? in the password: hidden in either reading'],
  ]
  for (const [url, redacted, behaviour] of CASES) t.equal(redactRedisUrl(url), redacted, behaviour)
})

t.test('cluster URLs', async (t) => {
  t.equal(isClusterUrl('redis+cluster://h:1'), true)
  t.equal(isClusterUrl('RedisS+Cluster://h:1'), true)
  t.equal(isClusterUrl('redis://h:1'), false)
  t.equal(isClusterUrl('http+cluster://h:1'), false)
  t.strictSame(clusterTarget('rediss+cluster://u%3A:p%40ss@h1:7000,[::1],h3/x?y'), {
    tls: true,
    seeds: [
      { host: 'h1', port: 7000 },
      { host: '::1', port: 6379 },
      { host: 'h3', port: 6379 },
    ],
    username: 'u:',
    password: 'p@ss',
  })
  t.strictSame(clusterTarget('redis://h:1'), { tls: false, seeds: [{ host: 'h', port: 1 }] }, 'a plain URL as a seed')
  t.strictSame(clusterTarget('redis+cluster://@h:1'), { tls: false, seeds: [{ host: 'h', port: 1 }] }, 'empty userinfo')
})
