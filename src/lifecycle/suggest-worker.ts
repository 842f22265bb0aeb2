/**
 * The suggest worker (suggest-pool.ts starts it): one suggestion at a time, off the proxy's event loop.
 */
import { parentPort } from 'node:worker_threads'
import { parseConfigText } from '../config/load.js'
import type { SuggestJob, SuggestResult } from './suggest-pool.js'
import { suggestRules } from './suggest.js'
import { reportJson } from './suggest-format.js'

const port = parentPort
if (port === null) throw new Error('suggest-worker.ts runs only as a worker thread')

port.on('message', (job: SuggestJob) => {
  let result: SuggestResult
  try {
    const compile = (text: string) => parseConfigText(text, job.file, job.env, job.denyFiles)
    const report = suggestRules({
      config: compile(job.configText),
      configText: job.configText,
      records: job.records,
      ...(job.agent !== undefined ? { agent: job.agent } : {}),
      ...(job.group !== undefined ? { group: job.group } : {}),
      compile,
    })
    result = { kind: 'report', report: reportJson(report) }
  } catch (err) {
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    result = { kind: 'config_error', message: message.slice(0, 300) }
  }
  port.postMessage(result)
})
