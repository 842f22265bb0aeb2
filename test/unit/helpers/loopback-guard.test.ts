import { readFileSync } from 'node:fs'
import t from 'tap'
import { assertLoopbackOnly } from '../../helpers/config.js'

/**
 * The guard every helper that starts a real proxy runs on its config: a pin, an allow_private network
 * or a Redis host outside loopback stops the test before anything is started. Configs that only
 * feed the parser and the policy (the SPEC example's 10.0.0.5 pin) could not start one.
 */
t.test('loopback configs pass', async (t) => {
  t.doesNotThrow(() =>
    assertLoopbackOnly(
      `upstream:
  resolve: { a.test: 127.0.0.1, b.test: [127.0.0.2, "::1"], c.test: "::ffff:127.0.0.1" }
  allow_private: [127.0.0.1/32, 127.0.0.0/8, "::1/128"]
telemetry: { redis: { url: "redis+cluster://127.0.0.1:7001,localhost:7002" } }
`,
      'loopback',
    ),
  )
  t.doesNotThrow(() => assertLoopbackOnly('groups: { g: { alow: [] } }\nagents: [', 'broken YAML'), 'left to the proxy')
  t.doesNotThrow(() => assertLoopbackOnly('upstream: { resolve: { a.test: not-an-ip } }\n', 'bad pin'), 'likewise')
})

t.test('anything reaching past loopback is refused, naming it', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['upstream: { resolve: { registry.internal: 10.0.0.5 } }', /registry\.internal: 10\.0\.0\.5/],
    ['upstream: { resolve: { m.test: [127.0.0.1, 192.0.2.7] } }', /m\.test: 192\.0\.2\.7/],
    ['upstream: { resolve: { v6.test: "2001:db8::1" } }', /2001:db8::1/],
    ['upstream: { allow_private: [10.0.0.0/24] }', /allow_private 10\.0\.0\.0\/24/],
    ['upstream: { allow_private: [127.0.0.0/7] }', /allow_private 127\.0\.0\.0\/7/],
    ['telemetry: { redis: { url: "redis://10.1.2.3:6379" } }', /redis 10\.1\.2\.3:6379/],
    ['telemetry: { redis: { url: "redis://cache.internal:6379" } }', /redis cache\.internal:6379/],
  ]
  for (const [yaml, named] of cases) t.throws(() => assertLoopbackOnly(yaml, 'case'), named, yaml)
  const spec = readFileSync(new URL('../../fixtures/configs/good-spec.yaml', import.meta.url), 'utf8')
  t.throws(() => assertLoopbackOnly(spec, 'good-spec.yaml'), /10\.0\.0\.5/, 'the SPEC example could start no proxy')
})
