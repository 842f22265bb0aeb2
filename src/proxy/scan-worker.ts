/**
 * A scan worker (scan-pool.ts starts it): runs `scanRequest` off the proxy's event loop, one job at
 * a time, and hands the body back with the verdict (it travels both ways transferred, not copied).
 */
import { parentPort } from 'node:worker_threads'
import type { ScanJobMessage, ScanResultMessage } from './scan-pool.js'
import { scanRequest, type ScanVerdict } from './scan-request.js'

const port = parentPort
if (port === null) throw new Error('scan-worker.ts runs only as a worker thread')

port.on('message', (msg: ScanJobMessage) => {
  const body = new Uint8Array(msg.body)
  let verdict: ScanVerdict
  try {
    verdict = scanRequest({ ...msg.job, body }, msg.limits)
  } catch {
    // A bug in a detector or decoder must not pass a request: fail closed, and keep serving.
    verdict = { kind: 'uninspectable', detail: 'scan_failed' }
  }
  const reply: ScanResultMessage = { id: msg.id, verdict, body: msg.body }
  port.postMessage(reply, [msg.body])
})
