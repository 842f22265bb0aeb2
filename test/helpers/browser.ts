import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core'

/**
 * Headless Chromium for the page tests: the distro build (playwright-core downloads nothing), with
 * every flag that keeps it off the network (this machine's closed network refuses what a fresh
 * profile would fetch: component updates, sync, QUIC probes) and one retry of the launch, which is
 * the slowest step on a machine that just installed Chromium and is running other tests beside it.
 */
const CHROMIUM = '/usr/bin/chromium'
const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** How long a page step (a selector, a navigation, a function) may take before the test fails. */
export const PAGE_WAIT_MS = 15_000

export async function launchChromium(): Promise<Browser> {
  const launch = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 })
  return launch().catch(launch)
}

/** A page in a new context, its steps bounded by PAGE_WAIT_MS. */
export async function newPage(
  browser: Browser,
  options: BrowserContextOptions,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(options)
  const page = await context.newPage()
  page.setDefaultTimeout(PAGE_WAIT_MS)
  return { context, page }
}
