import t from 'tap'
import { applyMode } from '../../../src/policy/mode.js'
import type { Decision, Mode } from '../../../src/policy/types.js'

// Frozen: the mode never rewrites the honest policy verdict (a write would throw in strict mode).
const allow: Decision = Object.freeze({ verdict: 'allow', reason: 'allowed', ruleId: 'builders.allow[0]' })
const deny: Decision = Object.freeze({ verdict: 'deny', reason: 'denied_path', ruleId: 'builders.allow[2]' })

const CASES: ReadonlyArray<readonly [Decision, Mode, { pass: boolean; wouldDeny: boolean }, string]> = [
  [allow, 'enforce', { pass: true, wouldDeny: false }, 'enforce passes an allow'],
  [deny, 'enforce', { pass: false, wouldDeny: false }, 'enforce obeys a deny'],
  [allow, 'audit', { pass: true, wouldDeny: false }, 'audit passes an allow, and nothing would have been denied'],
  [deny, 'audit', { pass: true, wouldDeny: true }, 'audit passes a deny and records that it would have denied'],
]

for (const [decision, mode, expected, behaviour] of CASES) {
  t.test(behaviour, async (t) => {
    t.strictSame(applyMode(decision, mode), expected)
  })
}
