/**
 * Audit mode as a separate pure step (STYLE §5.6): the decision stays the
 * honest policy verdict; the mode only says whether the edge obeys it.
 */
import type { Decision, Mode } from './types.js'

export function applyMode(decision: Decision, mode: Mode): { pass: boolean; wouldDeny: boolean } {
  if (decision.verdict === 'allow') return { pass: true, wouldDeny: false }
  return mode === 'audit' ? { pass: true, wouldDeny: true } : { pass: false, wouldDeny: false }
}
