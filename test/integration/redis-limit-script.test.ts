import t from 'tap'
import {
  HEARTBEAT_SCRIPT,
  heartbeatCall,
  LIMIT_SYNC_KEY_COUNT,
  LIMIT_SYNC_SCRIPT,
  limitSyncCall,
  limitSyncKeys,
  parseLimitSyncReply,
} from '../../src/limits/sync-script.js'
import { redisClient, startRedis } from '../helpers/redis.js'
import { LIMIT_SYNC_CASES, QUIET } from '../fixtures/limit-sync-cases.js'

/**
 * The limit sync's Lua, run by a real redis-server, passes the same table as share.ts's arithmetic
 * (test/unit/limits/share.test.ts): same grants, same totals, and the keys left as the table says.
 */
t.test('the limit sync script on a real redis-server', async (t) => {
  const redis = await startRedis(t)
  const client = redisClient(t, redis.url)

  let n = 0
  for (const c of LIMIT_SYNC_CASES) {
    await t.test(c.name, async (t) => {
      const keys = limitSyncKeys('pc-script:', `agent-${n++}`, 29_000_000, 20261125)
      const b = c.before
      if (b.requests !== undefined) await client.set(keys.requests, b.requests)
      if (b.previousRequests !== undefined) await client.set(keys.previousRequests, b.previousRequests)
      if (b.reporters !== undefined) await client.sadd(keys.reporters, ...b.reporters)
      if (b.bytes !== undefined) await client.set(keys.bytes, b.bytes)
      const args = { ...QUIET, ...c.args }
      const reply = await client.eval(LIMIT_SYNC_SCRIPT, LIMIT_SYNC_KEY_COUNT, ...limitSyncCall(keys, args))
      t.strictSame(parseLimitSyncReply(reply), c.reply)
      t.equal(Number(await client.get(keys.requests)), c.reply.requests, 'the minute holds the new count')
      t.equal(await client.sismember(keys.reporters, args.instance), 1, 'the reporter is marked as reported')
      t.ok((await client.ttl(keys.requests)) > 0, 'the minute expires')
      t.ok((await client.ttl(keys.reporters)) > 0, 'the reporters set expires')
      if (args.bytes > 0) t.ok((await client.ttl(keys.bytes)) > 0, 'the day expires')
    })
  }

  await t.test('an existing expiry is kept, not pushed back, by later reports', async (t) => {
    const keys = limitSyncKeys('pc-script:', 'ttl', 29_000_000, 20261125)
    await client.set(keys.requests, 1, 'EX', 30)
    await client.eval(LIMIT_SYNC_SCRIPT, LIMIT_SYNC_KEY_COUNT, ...limitSyncCall(keys, { ...QUIET, requests: 1 }))
    t.ok((await client.ttl(keys.requests)) <= 30)
  })

  await t.test('the heartbeat lists the live instances and forgets the silent ones', async (t) => {
    const key = 'pc-script:instances'
    const beat = (instance: string): Promise<unknown> =>
      client.eval(HEARTBEAT_SCRIPT, 1, ...heartbeatCall({ key, instance, windowMs: 5000 }))
    await client.zadd(key, 1, 'long-gone')
    t.strictSame(await beat('a'), ['a'], 'an instance silent for longer than the window is dropped')
    t.strictSame([...((await beat('b')) as string[])].sort(), ['a', 'b'])
    t.ok((await client.pttl(key)) > 0, 'the set expires when every instance stops')
  })
})
