/**
 * The suggest worker (suggest-pool.ts starts it): one suggestion at a time, off the proxy's event loop.
 */
import { parentPort } from 'node:worker_threads'
import { parseConfigText } from '../config/load.js'
import { ConfigError } from '../errors.js'
import type { SuggestJob, SuggestResult } from './suggest-pool.js'
import { suggestRules } from './suggest.js'
import { reportJson } from './suggest-format.js'

const port = parentPort
if (port === null) throw new Error('suggest-worker.ts runs only as a worker thread')

port.on('message', (job: SuggestJob) => {
  port.postMessage(run(job))
})

function run(job: SuggestJob): SuggestResult {
  const compile = (text: string) => parseConfigText(text, job.file, job.env, job.denyFiles)
  let config: ReturnType<typeof compile>
  try {
    config = compile(job.configText)
  } catch (err) {
    // The file on disk does not compile (a refused edit): it cannot take rules.
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    return { kind: 'config_error', message: message.slice(0, 300) }
  }
  try {
    const report = suggestRules({
      config,
      configText: job.configText,
      records: job.records,
      ...(job.agent !== undefined ? { agent: job.agent } : {}),
      ...(job.group !== undefined ? { group: job.group } : {}),
      compile,
    })
    return { kind: 'report', report: reportJson(report) }
  } catch (err) {
    // A suggestion whose edited config would not compile says so as the CLI does; anything else is a bug.
    if (err instanceof ConfigError)
      return { kind: 'config_error', message: err.message.split('\n')[0]?.slice(0, 300) ?? '' }
    return { kind: 'failed', why: err instanceof Error ? err.message.slice(0, 200) : String(err) }
  }
}
