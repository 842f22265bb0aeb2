import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { createApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import type { TelemetryRecord, DecisionRecord } from '../../src/telemetry/events.js'
import { assertLoopbackOnly, configHead } from './config.js'
import { captureLines } from './log.js'
import { until } from './poll.js'

export interface Portcullis {
  readonly app: App
  readonly dir: string
  readonly configFile: string
  readonly proxyPort: number
  readonly proxyUrl: string
  readonly adminUrl: string
  readonly adminToken: string
  /** Records so far (ring sink). */
  records(): TelemetryRecord[]
  decisions(): DecisionRecord[]
  /** Wait (bounded) for a record matching pred. */
  waitForRecord<T extends TelemetryRecord = TelemetryRecord>(
    pred: (r: TelemetryRecord) => boolean,
    timeoutMs?: number,
  ): Promise<T>
  /** Replace the config body (same listen/admin/tls head) the way editors do: write elsewhere, rename over. */
  rewriteConfig(yamlBody: string): void
  /** Raw log lines written so far. */
  logLines(): string[]
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789'

/**
 * Starts the same createApp() that `portcullis start` uses, on ephemeral
 * loopback ports, with `yamlBody` as the config (listen/admin/tls sections are
 * filled in unless the body sets them). Torn down with the test.
 */
export async function startPortcullis(
  t: Test,
  yamlBody: string,
  files: Record<string, string> = {},
  opts: {
    watch?: boolean
    env?: NodeJS.ProcessEnv
    /** Moves the written config (its path given) where the test wants it; returns the path to start with. */
    place?: (written: string) => string
  } = {},
): Promise<Portcullis> {
  const dir = t.testdir(files)
  const written = join(dir, 'portcullis.yaml')
  const head = configHead(dir, yamlBody)
  assertLoopbackOnly(yamlBody, 'startPortcullis')
  writeFileSync(written, `${head}\n${yamlBody}\n`)
  const configFile = opts.place?.(written) ?? written
  const rewriteConfig = (body: string): void => {
    assertLoopbackOnly(body, 'rewriteConfig')
    // The head of this body: a section it sets itself (approvals, say) is not written twice.
    writeFileSync(`${configFile}.tmp`, `${configHead(dir, body)}\n${body}\n`)
    renameSync(`${configFile}.tmp`, configFile)
  }
  const log = captureLines()
  const env = { ...process.env, PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, ...opts.env }
  const config = await loadConfig(configFile, env)
  const app = createApp(config, { logDestination: log.dest, env, watch: opts.watch ?? false })
  const { proxy, admin } = await app.start()
  t.teardown(() => app.close())
  const records = (): TelemetryRecord[] => app.ring.snapshot()
  return {
    app,
    dir,
    configFile,
    proxyPort: proxy.port,
    proxyUrl: `http://127.0.0.1:${proxy.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    adminToken: ADMIN_TOKEN,
    records,
    decisions: () => records().filter((r): r is DecisionRecord => r.event === 'decision'),
    logLines: () => log.raw(),
    rewriteConfig,
    async waitForRecord<T extends TelemetryRecord>(
      pred: (r: TelemetryRecord) => boolean,
      timeoutMs = 5000,
    ): Promise<T> {
      if (await until(() => records().some(pred), timeoutMs, 20)) return records().find(pred) as T
      throw new Error(`no matching record within ${timeoutMs} ms; have: ${JSON.stringify(records().slice(-5))}`)
    },
  }
}
