import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { explain, parseExplainUrl } from '../../../src/admin/routes/explain.js'
import { indexApprovals } from '../../../src/policy/approvals.js'

const CONFIG = parseConfigText(
  `agents:
  - id: a
    source_cidrs: [127.0.0.1/32]
    allow:
      - github: { repos: [acme/widgets], access: write, api: { pulls: create } }
`,
  'explain.yaml',
)

function target(url: string) {
  const parsed = parseExplainUrl(url)
  if (!parsed.ok) throw new Error(parsed.error)
  return parsed.facts
}

t.test('GET /api/explain refuses the GitHub API writes the proxy always refuses (SPEC §8)', async (t) => {
  const merge = explain(CONFIG, 'a', 'PUT', target('https://api.github.com/repos/acme/widgets/pulls/1/merge'))
  t.match(merge, { decision: 'deny', reason: 'denied_repo_write', detail: 'merge', stage: 'request', via: 'intercept' })
  const pr = explain(CONFIG, 'a', 'POST', target('https://api.github.com/repos/acme/widgets/pulls'))
  t.match(pr, { decision: 'allow', reason: 'allowed' }, 'a pull request: its body is judged on the wire')
  // An approval covering the merge changes nothing: the gate runs whatever approvals say.
  const approvals = indexApprovals([
    {
      id: '01M96R1Y0000000000000000AA',
      request_id: '01M96R1Y0000000000000000AB',
      agent: 'a',
      scope: 'host',
      method: 'PUT',
      host: 'api.github.com',
      port: 443,
      path: '/repos/acme/widgets/pulls/1/merge',
      created_at: new Date(0).toISOString(),
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      approved_by: 'admin',
      reason: 'test',
    },
  ])
  const approved = explain(
    CONFIG,
    'a',
    'PUT',
    target('https://api.github.com/repos/acme/widgets/pulls/1/merge'),
    approvals,
  )
  t.match(approved, { decision: 'deny', reason: 'denied_repo_write', detail: 'merge' }, 'an approval does not open it')
})
