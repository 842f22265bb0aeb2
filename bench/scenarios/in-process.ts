/** g. Leaf mint in process. h. bench/decide.ts, run as is, its output kept verbatim. */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { within } from '../lib.js'
import { benchLeafMint } from '../leaf-mint.js'
import type { Report } from '../report.js'

export const leafMethod =
  '**g — leaf mint.** In process: `createLeafCertCache(loadCa(…))`, `get()` of a never-seen host (forge TBS + native RSA-2048 signature + `createSecureContext`) vs a cached host. **h — decide.** `bench/decide.ts`, output below.'

export async function runLeafMint(report: Report): Promise<void> {
  const m = await benchLeafMint()
  report.add({
    id: 'g',
    scenario: 'leaf cert: cached get vs cold mint (in-process)',
    unit: 'µs',
    direct: m.cachedMeanUs,
    bare: null,
    proxy: m.coldMeanUs,
    proxyCpuUs: null,
    ratio: null,
    target: '—',
    met: null,
  })
  report.note(
    `g: cold mint p50 ${m.coldP50Us.toFixed(0)} µs, p99 ${m.coldP99Us.toFixed(0)} µs over ${m.coldMints} hosts (≈ ${(1e6 / m.coldMeanUs).toFixed(0)} mints/s on one core); cached get ${m.cachedMeanUs.toFixed(2)} µs over ${m.cachedHits} gets.`,
  )
}

export async function runDecide(root: string, report: Report): Promise<string | null> {
  const file = join(root, 'bench', 'decide.ts')
  if (!existsSync(file)) return null
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')))
  child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')))
  const code = await within(
    new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
    90_000,
    'bench/decide.ts',
    () => child.kill('SIGKILL'),
  ).catch((err: unknown) => {
    report.problem(`h: ${String(err)}`)
    return null
  })
  if (code !== 0) report.problem(`h: bench/decide.ts exited with ${code}`)
  return `$ node --import tsx bench/decide.ts\n${out.trim()}`
}
