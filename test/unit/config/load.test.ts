import { readFileSync } from 'node:fs'
import t from 'tap'
import { ConfigError, PortcullisError } from '../../../src/errors.js'
import { configText, loadConfig, parseConfigText, readDenyFiles, resolveConfigPath } from '../../../src/config/load.js'

const DIR = new URL('../../fixtures/configs/', import.meta.url)
const read = (name: string): string => readFileSync(new URL(name, DIR), 'utf8')

function issuesOf(name: string, env: NodeJS.ProcessEnv = {}): ConfigError['issues'] {
  try {
    parseConfigText(read(name), name, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  throw new Error(`${name} was accepted`)
}

type Loc = { line: number; col: number; path: string; message: RegExp }
const BROKEN: ReadonlyArray<readonly [string, string, Loc[]]> = [
  ['a YAML syntax error is located', 'bad-yaml-syntax.yaml', [{ line: 7, col: 1, path: '', message: /YAML syntax/ }]],
  [
    'an unknown key (`alow:`) is an error at the key',
    'bad-unknown-key.yaml',
    [{ line: 3, col: 5, path: 'groups.builders.alow', message: /unknown key 'alow'/ }],
  ],
  [
    'wrong types are all reported',
    'bad-wrong-type.yaml',
    [
      { line: 1, col: 34, path: 'listen.port', message: /expected number/ },
      { line: 3, col: 10, path: 'upstream.ports', message: /expected array/ },
    ],
  ],
  [
    'bad CIDRs are all reported',
    'bad-cidr.yaml',
    [
      { line: 2, col: 19, path: 'upstream.allow_private[0]', message: /not a valid CIDR/ },
      { line: 5, col: 34, path: 'agents[0].source_cidrs[1]', message: /not a valid CIDR/ },
    ],
  ],
  [
    'host `*` is rejected',
    'bad-host-star.yaml',
    [{ line: 5, col: 15, path: 'groups.everyone.allow[1].host', message: /every host/ }],
  ],
  [
    'host `*.` and non-normalised hosts are rejected with the form to use',
    'bad-host-star-dot.yaml',
    [
      { line: 4, col: 15, path: 'groups.everyone.allow[0].host', message: /every host/ },
      { line: 5, col: 15, path: 'groups.everyone.allow[1].host', message: /use '\*\.xn--bcher-kva\.de'/ },
      { line: 6, col: 15, path: 'groups.everyone.allow[2].host', message: /use 'example\.com'/ },
    ],
  ],
  [
    'a duplicate agent id is rejected',
    'bad-duplicate-agent.yaml',
    [{ line: 4, col: 9, path: 'agents[1].id', message: /duplicate agent id 'ci-42'/ }],
  ],
  [
    'a token not in sha256: form is rejected',
    'bad-token.yaml',
    [{ line: 3, col: 12, path: 'agents[0].token', message: /sha256:/ }],
  ],
  [
    'an unknown preset and an unknown group are rejected',
    'bad-unknown-preset.yaml',
    [
      { line: 5, col: 17, path: 'groups.builders.allow[1].preset', message: /unknown preset 'nmp'/ },
      { line: 9, col: 24, path: 'agents[0].groups[1]', message: /unknown group 'testers'/ },
    ],
  ],
  [
    'an unquoted `*.example.com` (a YAML alias) is located, with the quoting that fixes it',
    'bad-unquoted-wildcard.yaml',
    [
      { line: 5, col: 15, path: '', message: /quote the pattern: "\*\.example\.com"/ },
      { line: 6, col: 15, path: '', message: /alias '\*pkgs' has no anchor/ },
    ],
  ],
]

for (const [behaviour, name, expected] of BROKEN) {
  t.test(behaviour, async (t) => {
    const issues = issuesOf(name)
    t.equal(issues.length, expected.length)
    expected.forEach((e, i) => t.match(issues[i], { file: name, ...e }))
  })
}

const INLINE: ReadonlyArray<readonly [string, string, Partial<Loc>]> = [
  [
    'a misspelt rule key is reported on the rule',
    'groups:\n  g:\n    allow:\n      - host: a.test\n        mthods: [GET]\n',
    { line: 5, col: 9, path: 'groups.g.allow[0].mthods', message: /unknown key/ },
  ],
  [
    'an alias inside the node its anchor names (a structure containing itself) is located, not a crash',
    'groups:\n  g: &g\n    allow: [ { host: a.test } ]\n    more: *g\n',
    { line: 4, col: 11, path: '', message: /refers to a node that contains it/ },
  ],
  [
    'a rule that is not a mapping says what a rule is',
    'groups:\n  g:\n    allow:\n      - npm\n',
    { line: 4, col: 9, path: 'groups.g.allow[0]', message: /host, preset, github or git/ },
  ],
  [
    'a value that is neither of its forms says both (not "expected a rule")',
    'listen: { max_connections: lots }\n',
    { line: 1, col: 28, path: 'listen.max_connections', message: /expected number.*, or expected "auto"/ },
  ],
  [
    'an agent id must start with a letter or digit',
    'agents:\n  - { id: _x, source_cidrs: [127.0.0.1/32] }\n',
    { line: 2, col: 11, path: 'agents[0].id', message: /start with a letter or digit/ },
  ],
  [
    'a lower-case method is rejected',
    'groups:\n  g:\n    allow:\n      - { host: a.test, methods: [get] }\n',
    { line: 4, col: 35, path: 'groups.g.allow[0].methods[0]', message: /upper-case/ },
  ],
  [
    'a bad repo spec is rejected',
    'groups:\n  g:\n    allow:\n      - github: { repos: ["acme"] }\n',
    { line: 4, col: 27, path: 'groups.g.allow[0].github.repos[0]', message: /owner\/name/ },
  ],
  [
    'a bad path pattern is rejected',
    'groups:\n  g:\n    allow:\n      - { host: a.test, paths: ["/a/../b"] }\n',
    { line: 4, col: 33, path: 'groups.g.allow[0].paths[0]', message: /use '\/b'/ },
  ],
  [
    'an agent without token or sources is rejected',
    'agents:\n  - id: nobody\n',
    { line: 2, col: 5, path: 'agents[0]', message: /token, source_cidrs or sandboxes: true/ },
  ],
  [
    'a resolve pin must be an IP',
    'upstream:\n  resolve: { a.test: not-an-ip }\n',
    { line: 2, col: 22, path: 'upstream.resolve.a.test', message: /not an IP/ },
  ],
  [
    'dns_cache_ttl_ms cannot be negative (0 turns the cache off)',
    'upstream:\n  dns_cache_ttl_ms: -1\n',
    { line: 2, col: 21, path: 'upstream.dns_cache_ttl_ms', message: />=0/ },
  ],
  [
    'a bad duration is rejected',
    'approvals: { default_ttl: soon }\n',
    { line: 1, col: 27, path: 'approvals.default_ttl', message: /duration/ },
  ],
  [
    'max_sandbox_ttl is a duration',
    'identity: { max_sandbox_ttl: forever }\n',
    { line: 1, col: 30, path: 'identity.max_sandbox_ttl', message: /duration/ },
  ],
  [
    'signing_key_env names an environment variable',
    'identity:\n  signing_key_env: "my key"\n',
    { line: 2, col: 20, path: 'identity.signing_key_env', message: /environment variable/ },
  ],
  [
    'a deny rule cannot inject headers',
    'groups:\n  g:\n    deny:\n      - host: a.test\n        inspect_body: true\n',
    { line: 5, col: 9, path: 'groups.g.deny[0].inspect_body', message: /allow rules/ },
  ],
]

for (const [behaviour, text, expected] of INLINE) {
  t.test(behaviour, async (t) => {
    try {
      parseConfigText(text, 'inline.yaml')
      t.fail('accepted')
    } catch (err) {
      t.ok(err instanceof ConfigError)
      if (err instanceof ConfigError) t.match(err.issues, [{ file: 'inline.yaml', ...expected }])
    }
  })
}

t.test('an empty file gives the defaults', async (t) => {
  const c = parseConfigText('', 'empty.yaml')
  t.match(c, {
    listen: { host: '127.0.0.1', port: 3128 },
    admin: { host: '127.0.0.1', port: 9090 },
    mode: 'enforce',
    tls: { caCert: 'certs/ca.pem', caKey: 'certs/ca-key.pem', intercept: 'auto' },
    upstream: {
      ports: [80, 443],
      caFile: null,
      connectTimeoutMs: 10000,
      headerTimeoutMs: 10000,
      idleTimeoutMs: 300000,
      dnsCacheTtlMs: 10000,
    },
    telemetry: {
      log: { level: 'info', format: 'json' },
      memory: { size: 10000 },
      redis: { url: null, stream: 'portcullis:events', maxlen: 1000000 },
    },
    limits: { requestsPerMinute: 1200, concurrentConnections: 64, bytesPerDay: null },
    approvals: { file: 'config/approvals.yaml', defaultTtlMs: 86_400_000 },
  })
})

const ENV: ReadonlyArray<
  readonly [string, NodeJS.ProcessEnv, (c: ReturnType<typeof parseConfigText>) => unknown, unknown]
> = [
  [
    'PORTCULLIS_REDIS_URL sets telemetry.redis.url',
    { PORTCULLIS_REDIS_URL: 'redis://r:6379' },
    (c) => c.telemetry.redis.url,
    'redis://r:6379',
  ],
  [
    'PORTCULLIS_LOG_LEVEL sets telemetry.log.level',
    { PORTCULLIS_LOG_LEVEL: 'debug' },
    (c) => c.telemetry.log.level,
    'debug',
  ],
  [
    'PORTCULLIS_LISTEN takes host:port',
    { PORTCULLIS_LISTEN: '0.0.0.0:8080' },
    (c) => ({ host: c.listen.host, port: c.listen.port }),
    { host: '0.0.0.0', port: 8080 },
  ],
  [
    'PORTCULLIS_LISTEN takes [v6]:port',
    { PORTCULLIS_LISTEN: '[::1]:3129' },
    (c) => ({ host: c.listen.host, port: c.listen.port }),
    { host: '::1', port: 3129 },
  ],
  [
    'PORTCULLIS_LISTEN takes a bare port and keeps the host',
    { PORTCULLIS_LISTEN: '4000' },
    (c) => ({ host: c.listen.host, port: c.listen.port }),
    { host: '127.0.0.1', port: 4000 },
  ],
  [
    'an empty variable changes nothing',
    { PORTCULLIS_LISTEN: '' },
    (c) => ({ host: c.listen.host, port: c.listen.port }),
    { host: '127.0.0.1', port: 3128 },
  ],
]

for (const [behaviour, env, pick, expected] of ENV) {
  t.test(behaviour, async (t) => {
    t.same(pick(parseConfigText(read('good-minimal.yaml'), 'good-minimal.yaml', env)), expected)
  })
}

const BAD_ENV: ReadonlyArray<readonly [string, NodeJS.ProcessEnv, string]> = [
  ['a bad PORTCULLIS_LISTEN is a config error', { PORTCULLIS_LISTEN: 'localhost:99999' }, 'listen'],
  ['a bad PORTCULLIS_LOG_LEVEL is a config error', { PORTCULLIS_LOG_LEVEL: 'loud' }, 'telemetry.log.level'],
  [
    'a PORTCULLIS_REDIS_URL that is not a Redis URL is a config error',
    { PORTCULLIS_REDIS_URL: 'http://x' },
    'telemetry.redis.url',
  ],
]

const BAD_REDIS_URLS = ['http://x', 'redis//127.0.0.1:16379', 'redis://127.0.0.1:notaport', 'redis+cluster://a:1,']
for (const url of BAD_REDIS_URLS) {
  t.test(`telemetry.redis.url '${url}' is refused when the config is checked`, async (t) => {
    const text = `${read('good-minimal.yaml')}\ntelemetry: { redis: { url: ${JSON.stringify(url)} } }\n`
    let issues: ConfigError['issues'] = []
    try {
      parseConfigText(text, 'x.yaml', {})
    } catch (err) {
      if (err instanceof ConfigError) issues = err.issues
    }
    t.match(issues, [{ path: 'telemetry.redis.url', message: /Redis URL|host/ }])
  })
}
for (const url of [
  'redis://127.0.0.1:6379',
  'rediss://user:pw@127.0.0.1:6380/0',
  'redis+cluster://127.0.0.1:7000,127.0.0.2:7000',
  'redis://[::1]:6379',
]) {
  t.test(`telemetry.redis.url '${url}' is accepted`, async (t) => {
    const c = parseConfigText(
      `${read('good-minimal.yaml')}\ntelemetry: { redis: { url: ${JSON.stringify(url)} } }\n`,
      'x.yaml',
      {},
    )
    t.equal(c.telemetry.redis.url, url)
  })
}

for (const [behaviour, env, path] of BAD_ENV) {
  t.test(behaviour, async (t) => {
    t.match(issuesOf('good-minimal.yaml', env), [{ path, file: /^\$PORTCULLIS_/ }])
  })
}

t.test('resolveConfigPath prefers the flag, then PORTCULLIS_CONFIG, then the default', async (t) => {
  t.equal(resolveConfigPath('x.yaml', { PORTCULLIS_CONFIG: 'y.yaml' }), 'x.yaml')
  t.equal(resolveConfigPath(undefined, { PORTCULLIS_CONFIG: 'y.yaml' }), 'y.yaml')
  t.equal(resolveConfigPath(undefined, {}), 'config/portcullis.yaml')
})

t.test('loadConfig reads a file', async (t) => {
  const c = await loadConfig(new URL('good-spec.yaml', DIR).pathname)
  t.equal(c.policy.agents.size, 3)
})

t.test('loadConfig on a missing file throws PC_ERR_CONFIG_UNREADABLE', async (t) => {
  await t.rejects(loadConfig(new URL('no-such.yaml', DIR).pathname), { code: 'PC_ERR_CONFIG_UNREADABLE' })
  await t.rejects(loadConfig(new URL('no-such.yaml', DIR).pathname), PortcullisError)
})

t.test('the shipped default config loads', async (t) => {
  const c = await loadConfig(new URL('../../../config/portcullis.yaml', import.meta.url).pathname)
  t.match(c.policy.sourceAgents, [{ id: 'local' }])
})

t.test('loadConfig reports the path it was given, with the same lines, columns and keys', async (t) => {
  for (const [behaviour, name, expected] of BROKEN) {
    const file = new URL(name, DIR).pathname
    const err: unknown = await loadConfig(file).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err instanceof ConfigError, `${name}: ConfigError`)
    if (err instanceof ConfigError)
      t.match(
        err.issues,
        expected.map((e) => ({ file, ...e })),
        behaviour,
      )
  }
})

t.test('a quoted string where a port belongs (port: "abc") is located at the value', async (t) => {
  try {
    parseConfigText('listen:\n  host: 127.0.0.1\n  port: "abc"\n', 'abc.yaml')
    t.fail('accepted')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    if (err instanceof ConfigError)
      t.match(err.issues, [{ file: 'abc.yaml', line: 3, col: 9, path: 'listen.port', message: /expected number/ }])
  }
})

t.test('a reload names the settings it cannot apply in a running process', async (t) => {
  const { restartOnlyChanges } = await import('../../../src/app.js')
  const base = read('good-minimal.yaml')
  const a = parseConfigText(base, 'a.yaml', {})
  const b = parseConfigText(
    `${base}\nlisten: { host: 127.0.0.1, port: 4128 }\ntelemetry: { log: { level: debug } }\n`,
    'b.yaml',
    {},
  )
  t.same(restartOnlyChanges(a, b), ['listen.port', 'telemetry.log'])
  t.same(
    restartOnlyChanges(a, parseConfigText(`${base}\nmode: audit\n`, 'c.yaml', {})),
    [],
    'policy changes apply at once',
  )
  t.same(
    restartOnlyChanges(
      a,
      parseConfigText(
        `${base}\nlisten: { max_unauthenticated_per_source: 9, unauthenticated_denials_per_minute: 9 }\n`,
        'd.yaml',
        {},
      ),
    ),
    [],
    'the unauthenticated limits apply at once',
  )
})

/** The issues a ConfigError carries, or [] when `fn` did not throw one. */
function thrownIssues(fn: () => unknown): ReadonlyArray<Record<string, unknown>> {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.issues as unknown as ReadonlyArray<Record<string, unknown>>
  }
  return []
}

t.test('a config file that is not UTF-8, or far too large, is refused where it goes wrong', async (t) => {
  const bad = Buffer.concat([Buffer.from('agents:\n  - id: caf'), Buffer.from([0xe9]), Buffer.from('\n')])
  t.match(
    thrownIssues(() => configText(bad, 'latin1.yaml')),
    [{ file: 'latin1.yaml', line: 2, col: 12, message: /byte 0xE9 is not UTF-8/ }],
  )
  t.match(
    thrownIssues(() => configText(Buffer.from([0xff, 0xfe, 0x61, 0]), 'u16.yaml')),
    [{ message: /UTF-16/ }],
  )
  const surrogate = Buffer.concat([Buffer.from('a: 1\nb: x'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('\n')])
  t.match(
    thrownIssues(() => configText(surrogate, 's.yaml')),
    [{ line: 2, col: 5, message: /byte 0xED is not UTF-8/ }],
  )
  t.match(
    thrownIssues(() => configText(Buffer.alloc(5 * 1024 * 1024, 0x23), 'huge.yaml')),
    [{ message: /at most 4 MiB/ }],
  )
  t.equal(configText(Buffer.from('# café ✓\n'), 'ok.yaml'), '# café ✓\n', 'UTF-8 is read as it is')
})

t.test('identity.max_sandbox_ttl under a second is refused', async (t) => {
  t.match(
    thrownIssues(() => parseConfigText('identity: { max_sandbox_ttl: 0s }\n', 'ttl.yaml')),
    [{ path: 'identity.max_sandbox_ttl', message: /at least 1s/ }],
  )
  t.match(
    thrownIssues(() => parseConfigText('identity: { max_sandbox_ttl: 31d }\n', 'ttl.yaml')),
    [{ path: 'identity.max_sandbox_ttl', message: /at most 30d/ }],
  )
  t.equal(parseConfigText('identity: { max_sandbox_ttl: 30d }\n', 'ttl.yaml').identity.maxSandboxTtlMs, 30 * 86_400_000)
})

t.test('limits.bytes_per_day takes a size as push.max_pack_bytes does', async (t) => {
  const c = parseConfigText(
    'limits: { bytes_per_day: 2KiB }\nagents:\n  - { id: a, source_cidrs: [127.0.0.1/32] }\n  - { id: b, source_cidrs: [127.0.0.2/32], limits: { bytes_per_day: 5MB } }\n',
    'sizes.yaml',
  )
  t.equal(c.policy.agents.get('a')?.limits.bytesPerDay, 2048)
  t.equal(c.policy.agents.get('b')?.limits.bytesPerDay, 5_000_000)
  t.match(
    thrownIssues(() => parseConfigText('limits: { bytes_per_day: 0 }\n', 'zero.yaml')),
    [{ path: 'limits.bytes_per_day', message: /at least 1/ }],
  )
})

t.test('readDenyFiles reads none from a document that contains itself (parseConfigText says why)', async (t) => {
  t.same(await readDenyFiles('x: &a [*a]\n'), new Map())
})

t.test('inject_headers: no framing, routing or hop-by-hop field, no line break in a format', async (t) => {
  const rule = (inject: string): string =>
    `groups: { g: { allow: [ { host: a.test, inject_headers: { ${inject} } } ] } }\n`
  for (const name of ['Content-Length', 'transfer-encoding', 'Host', 'Connection', 'TE', 'Upgrade', 'Via'])
    t.match(
      thrownIssues(() => parseConfigText(rule(`${name}: { env: K }`), 'inject.yaml')),
      [{ path: `groups.g.allow[0].inject_headers.${name}`, message: /cannot be injected/ }],
      name,
    )
  t.match(
    thrownIssues(() => parseConfigText(rule('X-Key: { env: K, format: "a\\r\\nX-Evil: {}" }'), 'inject.yaml')),
    [{ path: 'groups.g.allow[0].inject_headers.X-Key.format', message: /line break/ }],
  )
  t.ok(parseConfigText(rule('Authorization: { env: K, format: "Bearer {}" }'), 'inject.yaml'), 'a credential field')
})

t.test('a timeout past what a Node timer holds is refused, not run as 1 ms', async (t) => {
  for (const key of ['connect_timeout_ms', 'header_timeout_ms', 'response_header_timeout_ms', 'idle_timeout_ms'])
    t.match(
      thrownIssues(() => parseConfigText(`upstream: { ${key}: 3000000000 }\n`, 'timeouts.yaml')),
      [{ path: `upstream.${key}`, message: /at most 2147483647/ }],
      key,
    )
  t.equal(
    parseConfigText('upstream: { idle_timeout_ms: 2147483647 }\n', 'timeouts.yaml').upstream.idleTimeoutMs,
    2 ** 31 - 1,
  )
})

t.test('a YAML tag that does not resolve is a located error, not a string read silently', async (t) => {
  for (const [text, line] of [
    ['groups: { g: { allow: [ { host: !!js/function a.test } ] } }\n', 1],
    ['mode: enforce\ngroups:\n  g: { allow: [ { host: a.test, paths: [!!js/regexp /.*/] } ] }\n', 3],
    ['mode: !foo enforce\n', 1],
  ] as const)
    t.match(
      thrownIssues(() => parseConfigText(text, 'tags.yaml')),
      [{ line, message: /^YAML: .*tag/i }],
      text,
    )
})

t.test('__proto__ as a name is refused where it stands, not dropped', async (t) => {
  for (const [text, line] of [
    ['groups:\n  __proto__: { allow: [ { host: a.test } ] }\n', 2],
    ['upstream:\n  resolve: { __proto__: 127.0.0.1 }\n', 2],
    ['presets:\n  "__proto__": [ { host: a.test } ]\n', 2],
  ] as const)
    t.match(
      thrownIssues(() => parseConfigText(text, 'proto.yaml')),
      [{ line, message: /__proto__/ }],
      text,
    )
})

t.test('listen and admin hosts are addresses or host names, checked before start', async (t) => {
  for (const host of ['999.1.1.1', '1.2.3', 'bad host', '-x'])
    t.match(
      thrownIssues(() => parseConfigText(`listen: { host: "${host}" }\n`, 'listen.yaml')),
      [{ path: 'listen.host', message: /IP address/ }],
      host,
    )
  t.match(
    thrownIssues(() => parseConfigText('admin: { host: "300.0.0.1" }\n', 'listen.yaml')),
    [{ path: 'admin.host' }],
  )
  for (const host of ['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost', 'proxy.internal'])
    t.equal(parseConfigText(`listen: { host: "${host}" }\n`, 'listen.yaml').listen.host, host, host)
})

t.test('approvals.default_ttl is a ttl the admin API accepts for an approval', async (t) => {
  for (const ttl of ['0s', '500ms', '91d', '100000d'])
    t.match(
      thrownIssues(() => parseConfigText(`approvals: { default_ttl: ${ttl} }\n`, 'ttl.yaml')),
      [{ path: 'approvals.default_ttl', message: /from 1s to 90d/ }],
      ttl,
    )
  t.equal(parseConfigText('approvals: { default_ttl: 90d }\n', 'ttl.yaml').approvals.defaultTtlMs, 90 * 86_400_000)
})
