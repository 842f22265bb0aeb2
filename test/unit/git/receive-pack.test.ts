import t from 'tap'
import { encodePktLine, FLUSH_PKT } from '../../../src/git/pkt-line.js'
import { checkRefname } from '../../../src/git/refname.js'
import {
  DEFAULT_RECEIVE_PACK_HEAD_LIMITS,
  parseReceivePackHead,
  type ReceivePackHeadResult,
} from '../../../src/git/receive-pack.js'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const Z = '0'.repeat(40)
const A256 = 'a'.repeat(64)
const B256 = 'b'.repeat(64)
const GIT_CAPS = ' report-status-v2 side-band-64k quiet object-format=sha1 agent=git/2.39.5'
const PACK = Buffer.from('PACK\0\0\0\x02\0\0\0\0', 'latin1')

const pkt = (s: string | Buffer) => encodePktLine(s)
const cmd = (old: string, neu: string, ref: string, caps?: string) =>
  pkt(
    caps === undefined
      ? `${old} ${neu} ${ref}`
      : Buffer.concat([Buffer.from(`${old} ${neu} ${ref}\0`), Buffer.from(caps)]),
  )
const body = (...parts: (Buffer | string)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)))

function headOf(r: ReceivePackHeadResult) {
  if (r.kind !== 'head') throw new Error(`expected a head, got ${JSON.stringify(r)}`)
  return r.head
}

t.test('a typical git push head: one update with capabilities, then the pack', async (t) => {
  const wire = body(cmd(A, B, 'refs/heads/main', GIT_CAPS), FLUSH_PKT, PACK)
  const head = headOf(parseReceivePackHead(wire))
  t.matchOnly(head, {
    commands: [{ old: A, new: B, ref: 'refs/heads/main' }],
    capabilities: ['report-status-v2', 'side-band-64k', 'quiet', 'object-format=sha1', 'agent=git/2.39.5'],
    objectFormat: 'sha1',
    pushOptions: [],
    shallow: [],
    signed: false,
    sideBand: 'side-band-64k',
    reportStatus: 'report-status-v2',
    packOffset: wire.length - PACK.length,
    expectsPack: true,
  })
})

t.test('several commands: only the first carries capabilities; LF endings are accepted', async (t) => {
  const wire = body(
    cmd(A, B, 'refs/heads/main', ' report-status'),
    pkt(`${Z} ${C} refs/heads/agent/ci-42/x\n`),
    pkt(`${B} ${Z} refs/heads/old`),
    FLUSH_PKT,
  )
  const head = headOf(parseReceivePackHead(wire))
  t.same(
    head.commands.map((c) => c.ref),
    ['refs/heads/main', 'refs/heads/agent/ci-42/x', 'refs/heads/old'],
  )
  t.equal(head.reportStatus, 'report-status')
  t.equal(head.sideBand, 'none')
  t.equal(head.expectsPack, true)
})

t.test('a first command without NUL has no capabilities and defaults to sha1', async (t) => {
  const head = headOf(parseReceivePackHead(body(pkt(`${A} ${B} refs/heads/main\n`), FLUSH_PKT)))
  t.same(head.capabilities, [])
  t.equal(head.objectFormat, 'sha1')
  t.equal(head.reportStatus, 'none')
})

t.test("git's probe (0000 alone) is a head with no commands and no pack", async (t) => {
  t.matchOnly(headOf(parseReceivePackHead(Buffer.from('0000'))), {
    commands: [],
    expectsPack: false,
    packOffset: 4,
    reportStatus: 'none',
    sideBand: 'none',
    objectFormat: 'sha1',
    capabilities: [],
    pushOptions: [],
    shallow: [],
    signed: false,
  })
})

t.test('a delete-only push expects no pack', async (t) => {
  const head = headOf(parseReceivePackHead(body(cmd(A, Z, 'refs/heads/gone', GIT_CAPS), FLUSH_PKT)))
  t.equal(head.expectsPack, false)
})

t.test('push options follow the commands when the capability was sent', async (t) => {
  const wire = body(
    cmd(A, B, 'refs/heads/main', `${GIT_CAPS} push-options`),
    FLUSH_PKT,
    pkt('ci.skip'),
    pkt('merge_request.create\n'),
    FLUSH_PKT,
    PACK,
  )
  const head = headOf(parseReceivePackHead(wire))
  t.same(head.pushOptions, ['ci.skip', 'merge_request.create'])
  t.equal(head.packOffset, wire.length - PACK.length)
})

t.test('without the push-options capability what follows the flush is the pack', async (t) => {
  const wire = body(cmd(A, B, 'refs/heads/main', GIT_CAPS), FLUSH_PKT, pkt('ci.skip'), FLUSH_PKT)
  const head = headOf(parseReceivePackHead(wire))
  t.same(head.pushOptions, [])
  t.equal(head.packOffset, wire.length - 15)
})

t.test('shallow lines before the commands are read', async (t) => {
  const head = headOf(
    parseReceivePackHead(body(pkt(`shallow ${C}`), cmd(A, B, 'refs/heads/main', GIT_CAPS), FLUSH_PKT)),
  )
  t.same(head.shallow, [C])
  t.equal(head.commands.length, 1)
})

t.test('sha256: 64-hex ids with object-format=sha256', async (t) => {
  const wire = body(cmd(A256, B256, 'refs/heads/main', ' report-status object-format=sha256'), FLUSH_PKT)
  const head = headOf(parseReceivePackHead(wire))
  t.equal(head.objectFormat, 'sha256')
  t.same(head.commands, [{ old: A256, new: B256, ref: 'refs/heads/main' }])
})

t.test('upper-case hex ids are folded to lower case (git reads them as the same id)', async (t) => {
  const head = headOf(parseReceivePackHead(body(cmd(A.toUpperCase(), B, 'refs/heads/main', GIT_CAPS), FLUSH_PKT)))
  t.equal(head.commands[0]!.old, A)
})

t.test('side-band alone selects 1000-byte packets; with side-band-64k the latter wins', async (t) => {
  const one = headOf(parseReceivePackHead(body(cmd(A, B, 'refs/heads/m', ' report-status side-band'), FLUSH_PKT)))
  t.equal(one.sideBand, 'side-band')
  const both = headOf(
    parseReceivePackHead(body(cmd(A, B, 'refs/heads/m', ' report-status side-band side-band-64k'), FLUSH_PKT)),
  )
  t.equal(both.sideBand, 'side-band-64k')
})

t.test('a signed push: commands come from the certificate body, before the signature', async (t) => {
  const cert = [
    'certificate version 0.1\n',
    'pusher Agent <a@example.invalid> 1700000000 +0000\n',
    'pushee http://127.0.0.1/repo.git\n',
    'nonce 1700000000-abc\n',
    '\n',
    `${A} ${B} refs/heads/main\n`,
    `${Z} ${C} refs/heads/agent/x\n`,
    '-----BEGIN PGP SIGNATURE-----\n',
    'iQEzBAABCAAdFiEE\n',
    '-----END PGP SIGNATURE-----\n',
  ]
  const wire = body(
    pkt(Buffer.concat([Buffer.from('push-cert\0'), Buffer.from(GIT_CAPS)])),
    ...cert.map((l) => pkt(l)),
    pkt('push-cert-end\n'),
    FLUSH_PKT,
    PACK,
  )
  const head = headOf(parseReceivePackHead(wire))
  t.equal(head.signed, true)
  t.same(head.commands, [
    { old: A, new: B, ref: 'refs/heads/main' },
    { old: Z, new: C, ref: 'refs/heads/agent/x' },
  ])
  t.equal(head.packOffset, wire.length - PACK.length)
})

t.test('malformed heads are refused, not guessed at', async (t) => {
  const cases: [string, Buffer, string][] = [
    [
      'a delim ends no command list',
      body(cmd(A, B, 'refs/heads/m', GIT_CAPS), Buffer.from('0001')),
      'unexpected_special_packet',
    ],
    [
      'capabilities on a later line',
      body(cmd(A, B, 'refs/heads/m', GIT_CAPS), cmd(A, C, 'refs/heads/n', ' report-status'), FLUSH_PKT),
      'capabilities_after_first_command',
    ],
    [
      'a shallow line after a command',
      body(cmd(A, B, 'refs/heads/m', GIT_CAPS), pkt(`shallow ${C}`), FLUSH_PKT),
      'shallow_after_command',
    ],
    ['an empty command line', body(pkt(''), FLUSH_PKT), 'short_command'],
    ['missing separators', body(pkt(`${A}-${B}-refs/heads/main`), FLUSH_PKT), 'command_syntax'],
    ['an ERR line', body(pkt('ERR go away'), FLUSH_PKT), 'short_command'],
    ['a reserved pkt length', body(cmd(A, B, 'refs/heads/m', GIT_CAPS), Buffer.from('0003')), 'pkt_reserved_length'],
    ['a non-hex pkt length', Buffer.from('zzzz'), 'pkt_bad_length'],
    [
      'two object formats',
      body(cmd(A, B, 'refs/heads/m', ' object-format=sha1 object-format=sha256'), FLUSH_PKT),
      'conflicting_object_formats',
    ],
    ['a control byte in capabilities', body(cmd(A, B, 'refs/heads/m', ' agent=x\x01'), FLUSH_PKT), 'bad_capability'],
    [
      'a control byte in a push option',
      body(cmd(A, B, 'refs/heads/m', ' push-options'), FLUSH_PKT, pkt('a\x1bb'), FLUSH_PKT),
      'bad_push_option',
    ],
    [
      'a delim among push options',
      body(cmd(A, B, 'refs/heads/m', ' push-options'), FLUSH_PKT, Buffer.from('0001')),
      'unexpected_special_packet',
    ],
    [
      'unsigned commands after a certificate',
      body(
        pkt('push-cert\0 report-status'),
        pkt('certificate version 0.1\n'),
        pkt('\n'),
        pkt(`${A} ${B} refs/heads/m\n`),
        pkt('push-cert-end\n'),
        cmd(A, C, 'refs/heads/n'),
        FLUSH_PKT,
      ),
      'commands_after_push_cert',
    ],
    [
      'a certificate without a body',
      body(pkt('push-cert\0 report-status'), pkt('certificate version 0.1\n'), pkt('push-cert-end\n'), FLUSH_PKT),
      'push_cert_without_body',
    ],
    [
      'a certificate with no commands',
      body(
        pkt('push-cert\0 report-status'),
        pkt('certificate version 0.1\n'),
        pkt('\n'),
        pkt('-----BEGIN PGP SIGNATURE-----\n'),
        pkt('push-cert-end\n'),
        FLUSH_PKT,
      ),
      'push_cert_without_commands',
    ],
    [
      'a NUL inside a certificate line (git keeps only what comes before it: hidden commands)',
      body(
        pkt('push-cert\0 report-status'),
        pkt('certificate version 0.1\n'),
        pkt('\0'),
        pkt('\n'),
        pkt(`${Z} ${B} refs/tags/v9\n`),
        pkt('\n'),
        pkt(`${Z} ${C} refs/heads/agent/x\n`),
        pkt('push-cert-end\n'),
        FLUSH_PKT,
      ),
      'nul_in_push_cert',
    ],
    [
      'an end line with a NUL after it',
      body(
        pkt('push-cert\0 report-status'),
        pkt('certificate version 0.1\n'),
        pkt('\n'),
        pkt(`${Z} ${C} refs/heads/agent/x\n`),
        pkt('push-cert-end\n\0'),
        pkt(`${Z} ${B} refs/heads/main\n`),
        pkt('push-cert-end\n'),
        FLUSH_PKT,
      ),
      'nul_in_push_cert',
    ],
    [
      'a flush inside a certificate',
      body(pkt('push-cert\0 report-status'), pkt('certificate version 0.1\n'), FLUSH_PKT),
      'unterminated_push_cert',
    ],
  ]
  for (const [name, wire, detail] of cases) {
    t.matchOnly(parseReceivePackHead(wire), { kind: 'error', code: 'malformed', detail }, name)
  }
})

t.test('bad object ids are bad_oid', async (t) => {
  const cases: [string, Buffer][] = [
    ['non-hex', body(pkt(`${'g'.repeat(40)} ${B} refs/heads/m`), FLUSH_PKT)],
    [
      '64 characters that are not hex',
      body(pkt(`${'z'.repeat(64)} ${B256} refs/heads/m\0 object-format=sha256`), FLUSH_PKT),
    ],
    ['bad shallow', body(pkt(`shallow ${'x'.repeat(40)}`), cmd(A, B, 'refs/heads/m', GIT_CAPS), FLUSH_PKT)],
    ['bad shallow with no commands', body(pkt('shallow 1234'), FLUSH_PKT)],
  ]
  for (const [name, wire] of cases) t.match(parseReceivePackHead(wire), { kind: 'error', code: 'bad_oid' }, name)
  // 40-hex ids where 64 are due do not even have their separators in place.
  const short = body(pkt(`${A} ${B} refs/heads/${'x'.repeat(60)}\0 object-format=sha256`), FLUSH_PKT)
  t.matchOnly(parseReceivePackHead(short), { kind: 'error', code: 'malformed', detail: 'command_syntax' })
})

t.test('an unknown object format is unsupported', async (t) => {
  t.match(parseReceivePackHead(body(cmd(A, B, 'refs/heads/m', ' object-format=md5'), FLUSH_PKT)), {
    kind: 'error',
    code: 'unsupported_object_format',
  })
})

t.test('ref names: git check-ref-format rules that matter', async (t) => {
  const bad: [string, string][] = [
    ['HEAD', 'not_under_refs'],
    ['heads/main', 'not_under_refs'],
    ['refs/heads/a..b', 'double_dot'],
    ['refs/heads/a@{1}', 'at_brace'],
    ['refs/heads/x.lock', 'lock_component'],
    ['refs/heads/x.lock/y', 'lock_component'],
    ['refs/heads/', 'empty_component'],
    ['refs/heads//x', 'empty_component'],
    ['refs/heads/.hidden', 'dot_component'],
    ['refs/heads/x.', 'trailing_dot'],
    ['refs/heads/a b', 'forbidden_char'],
    ['refs/heads/a\tb', 'forbidden_char'],
    ['refs/heads/a\x7fb', 'forbidden_char'],
    ['refs/heads/a\\b', 'forbidden_char'],
    ['refs/heads/a~1', 'forbidden_char'],
    ['refs/heads/a^', 'forbidden_char'],
    ['refs/heads/a:b', 'forbidden_char'],
    ['refs/heads/a?', 'forbidden_char'],
    ['refs/heads/*', 'forbidden_char'],
    ['refs/heads/[x', 'forbidden_char'],
  ]
  for (const [name, problem] of bad) {
    t.equal(checkRefname(name), problem, JSON.stringify(name))
    t.matchOnly(
      parseReceivePackHead(body(cmd(A, B, name, GIT_CAPS), FLUSH_PKT)),
      { kind: 'error', code: 'bad_refname', detail: problem },
      `on the wire: ${JSON.stringify(name)}`,
    )
  }
  for (const good of [
    'refs/heads/agent/ci-42/feature',
    'refs/tags/v1.0',
    'refs/heads/ünïcode',
    'refs/heads/a.b/c-d_e@f',
  ]) {
    t.equal(checkRefname(good), null, good)
    t.equal(parseReceivePackHead(body(cmd(A, B, good, GIT_CAPS), FLUSH_PKT)).kind, 'head', good)
  }
})

t.test('a ref name that is not UTF-8 is refused', async (t) => {
  const wire = body(pkt(Buffer.concat([Buffer.from(`${A} ${B} refs/heads/`), Buffer.from([0xff, 0xfe])])), FLUSH_PKT)
  t.matchOnly(parseReceivePackHead(wire), { kind: 'error', code: 'bad_refname', detail: 'not_utf8' })
})

t.test('every strict prefix of a complete head is need_more, or truncated when final', async (t) => {
  const wire = body(
    pkt(`shallow ${C}`),
    cmd(A, B, 'refs/heads/main', `${GIT_CAPS} push-options`),
    pkt(`${B} ${C} refs/heads/other`),
    FLUSH_PKT,
    pkt('opt'),
    FLUSH_PKT,
  )
  for (let n = 0; n < wire.length; n++) {
    const prefix = wire.subarray(0, n)
    const r = parseReceivePackHead(prefix)
    if (r.kind !== 'need_more') t.fail(`prefix ${n}: ${JSON.stringify(r)}`)
    const f = parseReceivePackHead(prefix, { final: true })
    if (f.kind !== 'error' || f.code !== 'truncated') t.fail(`final prefix ${n}: ${JSON.stringify(f)}`)
  }
  t.equal(parseReceivePackHead(wire).kind, 'head')
})

t.test('a head that does not end within maxHeadBytes is head_too_large', async (t) => {
  const limits = { ...DEFAULT_RECEIVE_PACK_HEAD_LIMITS, maxHeadBytes: 1000, maxCommands: 1_000_000 }
  const lines = [cmd(A, B, 'refs/heads/m0', GIT_CAPS)]
  for (let i = 1; i < 20; i++) lines.push(cmd(A, B, `refs/heads/m${i}`))
  const wire = body(...lines)
  t.match(parseReceivePackHead(wire, { limits }), { kind: 'error', code: 'head_too_large' })
  // Even when the packet that crosses the limit is not complete yet.
  t.match(parseReceivePackHead(wire.subarray(0, 1000), { limits }), { kind: 'error', code: 'head_too_large' })
})

t.test('more commands than maxCommands is too_many_commands, before the head ends', async (t) => {
  const limits = { ...DEFAULT_RECEIVE_PACK_HEAD_LIMITS, maxCommands: 3 }
  const lines = [cmd(A, B, 'refs/heads/m0', GIT_CAPS)]
  for (let i = 1; i < 4; i++) lines.push(cmd(A, B, `refs/heads/m${i}`))
  t.match(parseReceivePackHead(body(...lines), { limits }), { kind: 'error', code: 'too_many_commands' })
  t.equal(parseReceivePackHead(body(...lines.slice(0, 3), FLUSH_PKT), { limits }).kind, 'head')
})

t.test('more push options than maxPushOptions is refused', async (t) => {
  const limits = { ...DEFAULT_RECEIVE_PACK_HEAD_LIMITS, maxPushOptions: 2 }
  const wire = body(cmd(A, B, 'refs/heads/m', ' push-options'), FLUSH_PKT, pkt('a'), pkt('b'), pkt('c'), FLUSH_PKT)
  t.matchOnly(parseReceivePackHead(wire, { limits }), {
    kind: 'error',
    code: 'malformed',
    detail: 'too_many_push_options',
  })
})
