import t from 'tap'
import { denialBody, respondBadRequest, statusFor, type DenialContext } from '../../../src/proxy/respond.js'
import { REASONS, type DenyReason } from '../../../src/policy/reasons.js'
import type { DenyDecision } from '../../../src/policy/types.js'

const CTX: DenialContext = {
  requestId: '01JD0000000000000000000000',
  agent: 'ci-42',
  method: 'GET',
  host: 'pypi.evil.io',
  port: 443,
  scheme: 'https',
  path: '/simple/x/',
  query: '',
  wantsJson: false,
}
const deny = (reason: DenyReason, extra: Partial<DenyDecision> = {}): DenyDecision => ({
  verdict: 'deny',
  reason,
  ruleId: null,
  ...extra,
})

const STATUS: ReadonlyArray<readonly [DenyReason, number, string?]> = [
  ['denied_auth_required', 407],
  ['denied_auth_invalid', 407],
  ['denied_rate_limited', 429],
  ['upstream_error', 504, 'timeout'],
  ['upstream_error', 502, 'refused'],
  ['denied_no_rule', 403],
  ['denied_git_push', 403],
  ['denied_repo_write', 403],
  ['denied_package', 403],
]
for (const [reason, status, detail] of STATUS) {
  t.test(`${reason}${detail ? ` (${detail})` : ''} is answered ${status}`, async (t) => {
    t.equal(statusFor(deny(reason, detail === undefined ? {} : { detail })), status)
  })
}

t.test('every deny reason has a status and a sentence', async (t) => {
  for (const r of REASONS) {
    if (r === 'allowed') continue
    const body = denialBody(deny(r), CTX).body
    t.ok(statusFor(deny(r)) >= 400, r)
    // A 407 names no agent (see the test below).
    const who = statusFor(deny(r)) === 407 ? '' : ' for agent ci-42'
    t.match(
      body,
      new RegExp(`^portcullis (blocked|could not complete) GET https://pypi\\.evil\\.io/simple/x/${who}: \\S`),
    )
  }
})

t.test('a 407 never names the agent claimed, in text or JSON: ids cannot be enumerated', async (t) => {
  for (const reason of ['denied_auth_invalid', 'denied_auth_required'] as const) {
    const text = denialBody(deny(reason, { detail: 'bad_credentials' }), CTX).body
    t.notMatch(text, /ci-42/, reason)
    t.equal(text, denialBody(deny(reason, { detail: 'bad_credentials' }), { ...CTX, agent: null }).body)
    const json = JSON.parse(denialBody(deny(reason), { ...CTX, wantsJson: true }).body) as { agent: unknown }
    t.equal(json.agent, null, reason)
  }
})

t.test('a policy denial says it is policy, gives the id and, when approvable, the command', async (t) => {
  const { body } = denialBody(deny('denied_no_rule'), CTX)
  t.match(body, /This is a policy decision, not a network fault; retrying by another route will not help/)
  t.match(body, /an admin can approve it with: portcullis approve 01JD0+ \(or npx portcullis approve 01JD0+\)/)
  t.notMatch(denialBody(deny('denied_rate_limited'), CTX).body, /approve/, 'an approval cannot lift a rate limit')
})

t.test('an explanation replaces the generic sentence; details have their own', async (t) => {
  t.match(
    denialBody(deny('denied_repo_write', { explanation: 'Merging is for people.' }), CTX).body,
    /ci-42: Merging is for people\. This/,
  )
  t.match(denialBody(deny('denied_repo_write', { detail: 'read_only' }), CTX).body, /pushing needs access: write/)
  t.match(denialBody(deny('denied_method', { detail: 'needs_interception' }), CTX).body, /interception is off for it/)
  t.match(denialBody(deny('denied_path', { detail: 'path_too_long' }), CTX).body, /longer than the 8 KiB/)
  t.match(
    denialBody(deny('upstream_error', { detail: 'no_answer' }), CTX).body,
    /closed the connection without answering/,
  )
})

t.test('JSON carries the facts, the detail and the error npm prints', async (t) => {
  const { contentType, body } = denialBody(deny('denied_path', { ruleId: 'g.allow[0]', detail: 'x' }), {
    ...CTX,
    wantsJson: true,
  })
  t.equal(contentType, 'application/json')
  t.match(JSON.parse(body), {
    reason: 'denied_path',
    detail: 'x',
    request_id: CTX.requestId,
    agent: 'ci-42',
    host: 'pypi.evil.io',
    rule: 'g.allow[0]',
    error: /portcullis blocked/,
    approve_command: `portcullis approve ${CTX.requestId}`,
  })
})

t.test('a long query is shown cut, never the whole', async (t) => {
  const { body } = denialBody(deny('denied_path'), { ...CTX, query: 'q='.padEnd(500, 'x') })
  t.match(body, /\?q=x{198}…/)
})

t.test('a 400 says what to send instead only where the fix is the request form', async (t) => {
  const { PassThrough } = await import('node:stream')
  const answer = async (detail: string): Promise<string> => {
    const socket = new PassThrough()
    let out = ''
    socket.on('data', (c: Buffer) => (out += c.toString()))
    respondBadRequest(socket, 400, detail)
    await new Promise((r) => setImmediate(r))
    socket.destroy()
    return out
  }
  t.match(await answer('origin_form'), /Send an absolute-form request/)
  t.match(await answer('duplicate_proxy_authorization'), /Send one Proxy-Authorization header/)
  t.match(await answer('upgrade_not_supported'), /Only WebSocket upgrades are relayed/)
  t.match(await answer('paused_h2_upgrade'), /send HTTP\/1\.1/)
  const smuggling = await answer('te_and_cl')
  t.notMatch(smuggling, /absolute-form/, 'no advice that does not apply')
  t.match(smuggling, /malformed or ambiguous/)
})

t.test('revocations not read yet is a passing state: the body says to retry, not that it is policy', async (t) => {
  const { body } = denialBody(deny('denied_auth_invalid', { detail: 'revocations_unknown' }), CTX)
  t.match(body, /retry through the proxy in a minute/)
  t.notMatch(body, /This is a policy decision/)
})
