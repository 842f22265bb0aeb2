/**
 * Regenerates docs/analyst-page.png, the README's picture of the analyst page: the real app on
 * loopback ports, two real denials, one approved from the page, in headless Chromium (the distro
 * build; playwright-core downloads nothing). Not a test: it asserts nothing, it only draws.
 *
 *   node --import tsx scripts/screenshot-analyst-page.ts [out.png]
 *
 * Network: loopback only (the origin is pinned to 127.0.0.1).
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { chromium } from 'playwright-core'
import { createApp } from '../src/app.js'
import { loadConfig } from '../src/config/load.js'
import { originOnlyYaml, TOKEN } from '../test/helpers/config.js'

const CHROMIUM = '/usr/bin/chromium'
const ADMIN_TOKEN = 'screenshot-admin-token-0123456789'
const OUT = process.argv[2] ?? fileURLToPath(new URL('../docs/analyst-page.png', import.meta.url))

/** One request through the proxy (absolute-form, Basic auth); the request id of its answer. */
function viaProxy(proxyPort: number, agent: string, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: url,
        headers: {
          host: new URL(url).host,
          'proxy-authorization': `Basic ${Buffer.from(`${agent}:${TOKEN}`).toString('base64')}`,
        },
      },
      (res) => {
        res.resume()
        resolve(String(res.headers['x-portcullis-request-id']))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-screenshot-'))
  const origin: Server = createServer((_req, res) => res.end('ok\n'))
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const originPort = (origin.address() as AddressInfo).port
  const configFile = join(dir, 'portcullis.yaml')
  writeFileSync(
    configFile,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
tls: { ca_cert: ${JSON.stringify(join(dir, 'ca.pem'))}, ca_key: ${JSON.stringify(join(dir, 'ca-key.pem'))} }
approvals: { file: ${JSON.stringify(join(dir, 'approvals.yaml'))} }
${originOnlyYaml([originPort], { paths: ['/public/**'], agents: { ci: '', bot: '' } })}`,
  )
  const env = { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }
  const quiet = new Writable({ write: (_c, _e, cb) => cb() })
  const app = createApp(await loadConfig(configFile, env), { logDestination: quiet, env })
  const { proxy, admin } = await app.start()
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  })
  try {
    const page = await browser.newPage({
      viewport: { width: 1440, height: 420 },
      deviceScaleFactor: 1,
      locale: 'en-GB',
      timezoneId: 'UTC',
    })
    page.setDefaultTimeout(5000)
    await page.goto(`http://127.0.0.1:${admin.port}/`)
    await page.fill('#token', ADMIN_TOKEN)
    await page.press('#token', 'Enter')
    await page.waitForSelector('#status.live')
    // Denials made after the page connected reach it over the live stream, as an analyst sees them.
    const ciId = await viaProxy(proxy.port, 'ci', `http://origin.test:${originPort}/private/a.txt`)
    const botId = await viaProxy(proxy.port, 'bot', `http://other.test:${originPort}/x`)
    const row = (id: string): string => `#blocked tbody tr[data-id="${id}"]`
    await page.waitForSelector(row(botId))
    await page.selectOption(`${row(ciId)} select[name=scope]`, 'exact')
    await page.fill('#approver', 'Dana')
    await page.dispatchEvent('#approver', 'change')
    await page.fill(`${row(ciId)} input[name=ttl]`, '2h')
    await page.fill(`${row(ciId)} input[name=reason]`, 'the build needs this file')
    await page.click(`${row(ciId)} .approve-btn`)
    await page.waitForSelector(`${row(ciId)}.approved`)
    await page.$$eval('.scroll', (els) => els.forEach((el) => el.scrollTo(0, 0)))
    const png = await page.screenshot({ fullPage: true, animations: 'disabled' })
    writeFileSync(OUT, png)
    console.log(`wrote ${OUT} (${png.length} bytes)`)
  } finally {
    await browser.close()
    await app.close()
    origin.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
