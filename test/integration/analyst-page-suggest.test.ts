import t from 'tap'
import { launchChromium, newPage } from '../helpers/browser.js'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'

/**
 * The analyst page's suggest view (SPEC §10) in headless Chromium: the rules that would admit the
 * blocked rows the current filter shows, one YAML block per agent, copied with one click.
 */

/** The DOM globals used in page functions (the test compiles without lib "dom"). */
declare const navigator: { clipboard: { readText(): Promise<string> } }

t.test('the page suggests rules for the current filter, copyable as YAML', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { agents: { ci: '', bot: '' } }))
  for (const [agent, host] of [
    ['ci', 'other.test'],
    ['ci', 'other.test'],
    ['bot', 'paths.test'],
  ] as const) {
    const r = await curl([
      '--proxy',
      pc.proxyUrl,
      '--proxy-user',
      `${agent}:${TOKEN}`,
      `http://${host}:${origin.port}/x`,
    ])
    t.equal(r.status, 403)
  }

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { context, page } = await newPage(browser, {
    viewport: { width: 1280, height: 800 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: pc.adminUrl })
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(err.message))
  await page.goto(`${pc.adminUrl}/`)
  await page.fill('#token', pc.adminToken)
  await page.click('#token-form button[type="submit"]')
  await page.waitForSelector('#blocked tbody tr')

  await page.click('#suggest-btn')
  await page.waitForSelector('#suggest:not([hidden]) .target pre')
  const blocks = await page.$$eval('#suggest .target h3', (hs) => hs.map((h) => h.textContent ?? ''))
  t.same(blocks, [
    'agent ci: add under agents[0].allow (1 rule(s) for 2 request(s))',
    'agent bot: add under agents[1].allow (1 rule(s) for 1 request(s))',
  ])
  const yaml = await page.$$eval('#suggest .target pre', (ps) => ps.map((p) => p.textContent ?? ''))
  t.match(
    yaml[0],
    /^# suggested: 2 denied requests by ci \(other\.test:\d+ ×2\)[^\n]*\n- host: other\.test\n {2}methods: \[GET\]$/,
  )
  t.match(yaml[1], /- host: paths\.test/)
  t.match(await page.textContent('#suggest-scope'), /all blocked requests; this instance's memory/)

  await page.click('#suggest .target:first-child .copy-btn')
  await page.waitForFunction(() => {
    const b = globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }
    return b.document.querySelector('#suggest .target:first-child .copy-btn')?.textContent !== 'Copy YAML'
  })
  const label = await page.textContent('#suggest .target:first-child .copy-btn')
  if (label === 'Copied') t.equal(await page.evaluate(() => navigator.clipboard.readText()), yaml[0])
  else t.equal(label, 'Selected: press Ctrl-C', 'without the clipboard the text is selected for copying')

  // The current filter narrows the suggestion to what it shows.
  await page.fill('#f-agent', 'bot')
  await page.click('#suggest-btn')
  await page.waitForFunction(() => {
    const b = globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
    return b.document.querySelectorAll('#suggest .target h3').length === 1
  })
  t.match(await page.textContent('#suggest .target h3'), /^agent bot: add under agents\[1\]\.allow/)
  t.match(await page.textContent('#suggest-scope'), /agent bot/)
  await page.click('#suggest-close')
  t.equal(await page.isHidden('#suggest'), true)
  t.same(problems, [])
})
