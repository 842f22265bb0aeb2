/**
 * A rewrite worker (packument-pool.ts starts it): runs `runRewriteJob` off the proxy's event loop,
 * one job at a time. Compiled rules are kept by id, the least recently used forgotten first.
 */
import { parentPort } from 'node:worker_threads'
import type { RewriteJobMessage, RewriteReplyMessage } from './packument-pool.js'
import { runRewriteJob, type RewriteOutcome } from './rewrite-job.js'
import { compileAllPackageRules, type PackageRules } from './rules.js'

const port = parentPort
if (port === null) throw new Error('packument-worker.ts runs only as a worker thread')

const RULES_KEPT = 16
const compiled = new Map<number, PackageRules | null>()

function rulesFor(msg: RewriteJobMessage): PackageRules | null | undefined {
  if (msg.rules !== null) {
    const r = compileAllPackageRules(msg.rules.ecosystem, msg.rules.blocks)
    compiled.set(msg.rulesId, r.ok ? r.rules : null)
  }
  const rules = compiled.get(msg.rulesId)
  if (rules === undefined) return undefined
  // Re-insert: Map order is then least recently used first.
  compiled.delete(msg.rulesId)
  compiled.set(msg.rulesId, rules)
  while (compiled.size > RULES_KEPT) compiled.delete(compiled.keys().next().value as number)
  return rules
}

port.on('message', (msg: RewriteJobMessage) => {
  const rules = rulesFor(msg)
  if (rules === undefined) {
    const reply: RewriteReplyMessage = { id: msg.id, kind: 'need_rules', body: msg.body }
    port.postMessage(reply, [msg.body])
    return
  }
  let outcome: RewriteOutcome
  try {
    outcome =
      rules === null
        ? { kind: 'invalid', problem: 'bad_rules' }
        : runRewriteJob(new Uint8Array(msg.body), msg.job, rules)
  } catch {
    // A bug here must not pass a document unfiltered: fail closed, and keep serving.
    outcome = { kind: 'failed', detail: 'worker_failed' }
  }
  const reply: RewriteReplyMessage = { id: msg.id, kind: 'done', outcome }
  const transfer = outcome.kind === 'rewritten' ? [outcome.body.buffer as ArrayBuffer] : []
  port.postMessage(reply, transfer)
})
