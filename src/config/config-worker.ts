/**
 * The config reader's thread (config-reader.ts starts it): checks one config text at a time, off the
 * proxy's event loop.
 */
import { parentPort } from 'node:worker_threads'
import { ConfigError } from '../errors.js'
import type { ConfigCheckJob, ConfigCheckReply } from './config-reader.js'
import { checkConfigText } from './load.js'

const port = parentPort
if (port === null) throw new Error('config-worker.ts runs only as a worker thread')

port.on('message', (job: ConfigCheckJob) => {
  void check(job).then((reply) => port.postMessage(reply))
})

async function check(job: ConfigCheckJob): Promise<ConfigCheckReply> {
  try {
    return { kind: 'ok', ...(await checkConfigText(job.text, job.file, job.env)) }
  } catch (err) {
    if (err instanceof ConfigError) return { kind: 'invalid', issues: err.issues }
    return { kind: 'error', message: err instanceof Error ? err.message : String(err) }
  }
}
