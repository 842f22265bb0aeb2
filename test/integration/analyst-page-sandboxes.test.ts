import { randomBytes } from 'node:crypto'
import t from 'tap'
import { launchChromium, newPage } from '../helpers/browser.js'
import { adminCall } from '../helpers/admin.js'
import { curl } from '../helpers/clients.js'
import { upstreamYaml } from '../helpers/config.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { startPortcullis } from '../helpers/start-portcullis.js'

/**
 * The analyst page with sandbox credentials (SPEC §9), in headless Chromium: a sandbox's denials show
 * its id and labels under the agent, the sandbox and label filters narrow the rows, and an approval
 * made with "this sandbox only" applies to that sandbox alone.
 */

interface Issued {
  readonly id: string
  readonly proxy_url: string
}

t.test('the analyst page shows, filters and approves per sandbox', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    `${upstreamYaml([origin.port])}
groups: { g: { allow: [ { host: origin.test, paths: ["/public/**"] } ] } }
agents:
  - { id: ci, groups: [g], sandboxes: true }
`,
    {},
    { env: { PORTCULLIS_SIGNING_KEY: randomBytes(32).toString('base64') } },
  )
  const issue = async (task: string): Promise<Issued> =>
    (await adminCall<Issued>(pc.adminUrl, 'POST', '/api/sandboxes', { agent: 'ci', ttl: '1h', labels: { task } })).body
  const a = await issue('T-1')
  const b = await issue('T-2')
  const denied = async (s: Issued): Promise<string> => {
    const r = await curl(['--proxy', s.proxy_url, `http://origin.test:${origin.port}/private/x`])
    t.equal(r.status, 403)
    return r.headers['x-portcullis-request-id'] as string
  }
  const aId = await denied(a)
  const bId = await denied(b)

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { page } = await newPage(browser, { locale: 'en-GB', timezoneId: 'UTC' })
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(err.message))
  await page.goto(`${pc.adminUrl}/`)
  await page.fill('#token', pc.adminToken)
  await page.press('#token', 'Enter')
  await page.waitForSelector('#status.live')
  const row = (id: string): string => `#blocked tbody tr[data-id="${id}"]`
  await page.waitForSelector(row(aId))
  await page.waitForSelector(row(bId))
  const rows = async (): Promise<string[]> =>
    page.$$eval('#blocked tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-id') ?? '').sort())

  t.test('the agent cell shows the sandbox id and its labels', async (t) => {
    const text = await page.textContent(`${row(aId)} td.sandbox`)
    t.match(text, /^ci/)
    t.match(text, a.id)
    t.match(text, /task=T-1/)
  })

  t.test('the sandbox and label filters narrow the rows', async (t) => {
    await page.fill('#f-sandbox', a.id.toLowerCase())
    t.same(await rows(), [aId])
    await page.fill('#f-sandbox', '')
    await page.fill('#f-label', 'task=T-2')
    t.same(await rows(), [bId])
    await page.fill('#f-label', 'task')
    t.same(await rows(), [aId, bId].sort(), 'a key alone: any value')
    await page.fill('#f-label', '')
  })

  t.test('Suggest rules asks only about the rows the sandbox and label filters show', async (t) => {
    await page.fill('#f-label', 'task=T-2')
    const asked = page.waitForRequest((r) => r.url().includes('/api/suggest'))
    await page.click('#suggest-btn')
    const url = new URL((await asked).url())
    t.equal(url.searchParams.get('label'), 'task=T-2')
    await page.waitForSelector('#suggest:not([hidden])')
    t.match(await page.textContent('#suggest-scope'), /label task=T-2/)
    await page.click('#suggest-close')
    await page.fill('#f-label', '')
    await page.fill('#f-sandbox', b.id)
    const bySandbox = page.waitForRequest((r) => r.url().includes('/api/suggest'))
    await page.click('#suggest-btn')
    t.equal(new URL((await bySandbox).url()).searchParams.get('sandbox'), b.id)
    await page.waitForSelector('#suggest:not([hidden])')
    await page.click('#suggest-close')
    await page.fill('#f-sandbox', '')
  })

  t.test('"this sandbox only" makes an approval for that sandbox alone', async (t) => {
    // The table is drawn again once the filter above is cleared: wait for the row, then ask.
    await page
      .waitForSelector(`${row(aId)} input[name=sandbox_only]`, { state: 'visible', timeout: 5000 })
      .catch(() => null)
    t.equal(await page.isVisible(`${row(aId)} input[name=sandbox_only]`), true, 'offered on a sandbox row')
    await page.fill(`${row(aId)} input[name=reason]`, 'task T-1 needs it')
    await page.check(`${row(aId)} input[name=sandbox_only]`)
    await page.click(`${row(aId)} .approve-btn`)
    await page.waitForSelector(`${row(aId)}.approved`)
    const list = await adminCall<{ approvals: Array<{ request_id: string; sandbox?: string; covers: string }> }>(
      pc.adminUrl,
      'GET',
      '/api/approvals',
    )
    t.match(
      list.body.approvals.find((x) => x.request_id === aId),
      { sandbox: a.id, covers: /only$/ },
    )
    t.equal((await curl(['--proxy', a.proxy_url, `http://origin.test:${origin.port}/private/x`])).status, 200)
    t.equal((await curl(['--proxy', b.proxy_url, `http://origin.test:${origin.port}/private/x`])).status, 403)
  })

  t.same(problems, [], 'the page ran clean')
})
