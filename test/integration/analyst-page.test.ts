import t from 'tap'
import type { Page } from 'playwright-core'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { basicAuth, curl, rawExchange } from '../helpers/clients.js'
import { until } from '../helpers/poll.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { launchChromium, newPage, PAGE_WAIT_MS } from '../helpers/browser.js'

/**
 * The analyst page end to end: the real app, the real page in headless
 * Chromium (the distro build; playwright-core downloads nothing), real
 * denials through the proxy with curl. Every wait is bounded (PAGE_WAIT_MS).
 */

/** The one DOM global used in page functions (the test compiles without lib "dom"). */
declare const document: { querySelectorAll(selector: string): ArrayLike<{ getAttribute(name: string): string | null }> }

/** Agents that flood the page with denials. */
const NOISY = Array.from({ length: 12 }, (_, i) => `noisy${i}`)

const rowSel = (requestId: string): string => `#blocked tbody tr[data-id="${requestId}"]`

async function visibleRowIds(page: Page): Promise<string[]> {
  return page.$$eval('#blocked tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-id') ?? ''))
}

/** Wait (bounded) until the blocked table shows exactly `ids`, in any order. */
async function waitForRows(page: Page, ids: readonly string[]): Promise<string[]> {
  const want = JSON.stringify([...ids].sort())
  await page
    .waitForFunction(
      (w) =>
        JSON.stringify(
          Array.from(document.querySelectorAll('#blocked tbody tr'), (tr) => tr.getAttribute('data-id')).sort(),
        ) === w,
      want,
      { timeout: PAGE_WAIT_MS },
    )
    .catch(() => undefined)
  return (await visibleRowIds(page)).sort()
}

t.test('the analyst page shows denials live, filters them, approves and revokes', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], { paths: ['/public/**'], agents: { ci: '', bot: '' } }),
  )
  const as = (agent: string): string[] => ['--proxy', pc.proxyUrl, '--proxy-user', `${agent}:${TOKEN}`]
  const blockedUrl = `http://origin.test:${origin.port}/private/a.txt`

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { context, page } = await newPage(browser, {
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-GB',
    timezoneId: 'UTC',
  })
  // The page must stay on its own origin (CSP default-src 'self') and run clean.
  const foreign: string[] = []
  const problems: string[] = []
  page.on('request', (req) => {
    if (!req.url().startsWith(`${pc.adminUrl}/`) && !req.url().startsWith('data:')) foreign.push(req.url())
  })
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`))
  // Failed responses are checked as a list below (Chromium also logs each one to the console).
  const failed: string[] = []
  page.on('response', (res) => {
    if (res.status() >= 400) failed.push(`${res.status()} ${res.request().method()} ${new URL(res.url()).pathname}`)
  })
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource:'))
      problems.push(`console: ${msg.text()}`)
  })

  let loads = 0
  page.on('load', () => loads++)
  const nav = await page.goto(`${pc.adminUrl}/`)
  t.equal(nav?.status(), 200, 'the page is served')
  t.match(nav?.headers()['content-security-policy'], /default-src 'self'/, 'under a strict CSP')
  for (const [path, type] of [
    ['/page/app.js', 'text/javascript'],
    ['/page/style.css', 'text/css'],
  ] as const) {
    const res = await context.request.get(`${pc.adminUrl}${path}`)
    t.match(res.headers()['content-type'], type, `${path} is served as ${type}`)
  }
  // Without its script and stylesheet the page cannot work; stop here rather than time out step by step.
  if (!t.passing()) return

  await t.test('before a token: empty states say what to do', async (t) => {
    t.equal(await page.textContent('#blocked-empty'), 'Enter the admin token to see blocked requests.')
    t.equal(await page.textContent('#approvals-empty'), 'Enter the admin token to see current approvals.')
    t.equal(await page.isHidden('#blocked'), true, 'no empty table is shown')
    t.equal(await page.getAttribute('#token', 'type'), 'password')
    t.equal(
      await page.getByLabel('Admin token', { exact: true }).getAttribute('id'),
      'token',
      'the token field is labelled',
    )
    t.equal(await page.getByRole('button', { name: 'Connect' }).count(), 1, 'the connect button is named')
    for (const [label, id] of [
      ['Agent', 'f-agent'],
      ['Host', 'f-host'],
      ['Reason', 'f-reason'],
    ] as const) {
      t.equal(await page.getByLabel(label, { exact: true }).getAttribute('id'), id, `the ${label} filter is labelled`)
    }
  })

  await t.test('a wrong token is refused visibly', async (t) => {
    await page.fill('#token', 'not-the-token')
    await page.click('#token-form button[type=submit]')
    await page.waitForSelector('#status.error')
    t.match(await page.textContent('#status'), /token refused/)
    t.equal(await page.getAttribute('#token', 'aria-invalid'), 'true', 'the field is marked invalid')
  })

  await t.test('the right token connects the live stream', async (t) => {
    await page.fill('#token', pc.adminToken)
    await page.press('#token', 'Enter')
    await page.waitForSelector('#status.live')
    t.equal(await page.textContent('#status'), 'live')
    t.equal(await page.getAttribute('#token', 'aria-invalid'), null)
    t.equal(await page.textContent('#blocked-empty'), 'No blocked requests yet. New ones appear here live.')
    t.equal(await page.textContent('#approvals-empty'), 'No active approvals.')
  })

  // Denials made only now, after the page loaded: they can reach it only over SSE (no reload happens).
  const ciDenied = await curl([...as('ci'), blockedUrl])
  t.equal(ciDenied.status, 403)
  t.equal(ciDenied.headers['x-portcullis-decision'], 'denied_path')
  const ciId = ciDenied.headers['x-portcullis-request-id'] as string
  const botDenied = await curl([...as('bot'), `http://other.test:${origin.port}/x`])
  t.equal(botDenied.headers['x-portcullis-decision'], 'denied_no_rule')
  const botId = botDenied.headers['x-portcullis-request-id'] as string
  t.equal(origin.seen.length, 0, 'neither denial reached the origin')

  await t.test('blocked rows appear live with reason and request id', async (t) => {
    await page.waitForSelector(rowSel(ciId))
    await page.waitForSelector(rowSel(botId))
    const cells = await page.$$eval(`${rowSel(ciId)} td`, (tds) => tds.map((td) => td.textContent ?? ''))
    t.same(
      cells.slice(1, 6),
      ['ci', 'GET', `origin.test:${origin.port}`, '/private/a.txt', 'denied_path'],
      'agent, method, host, path, reason',
    )
    t.equal(cells[6], 'g.allow[0]', 'the rule that denied it')
    t.equal(cells[7], ciId, 'request id shown')
    t.equal(await page.textContent(`${rowSel(botId)} td.reason`), 'denied_no_rule')
    t.equal(await page.isHidden('#blocked-empty'), true, 'the empty state is gone')
    t.equal(loads, 1, 'no reload happened')
  })

  await t.test('filters by agent, host and reason', async (t) => {
    await page.fill('#f-agent', 'bot')
    t.same(await waitForRows(page, [botId]), [botId], 'agent')
    // Also once the server has answered for the filter (no rows at all then, not only none shown).
    const asked = page.waitForResponse((res) => /\/api\/events\?.*agent=nobody.*host=origin\.test/.test(res.url()))
    await page.fill('#f-host', 'origin.test')
    await page.fill('#f-agent', 'nobody')
    t.same(await waitForRows(page, []), [], 'agent and host with no match')
    await asked
    // Its body read and rendered: a turn of the page's event loop after the response.
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 200)))
    t.equal(await page.textContent('#blocked-empty'), 'No blocked requests match the filters.')
    await page.fill('#f-host', '')
    await page.click('#clear-filters')
    t.same(await waitForRows(page, [ciId, botId]), [ciId, botId].sort(), 'cleared')

    await page.fill('#f-host', 'origin.test')
    t.same(await waitForRows(page, [ciId]), [ciId], 'exact host')
    await page.fill('#f-host', '*.test')
    t.same(await waitForRows(page, [ciId, botId]), [ciId, botId].sort(), 'wildcard host')
    await page.fill('#f-host', '')

    await page.selectOption('#f-reason', 'denied_path')
    t.same(await waitForRows(page, [ciId]), [ciId], 'reason')
    await page.selectOption('#f-reason', 'denied_no_rule')
    t.same(await waitForRows(page, [botId]), [botId], 'other reason')
    await page.click('#clear-filters')
    t.same(await waitForRows(page, [ciId, botId]), [ciId, botId].sort(), 'cleared again')
  })

  await t.test('what an analyst types in a row survives a reload of the rows', async (t) => {
    const reason = `${rowSel(ciId)} input[name=reason]`
    await page.fill(reason, 'half typed')
    // Clearing the filters asks the server again, and the rows are drawn anew from its answer.
    const reloaded = page.waitForResponse((res) => res.url().includes('/api/events?'))
    await page.click('#clear-filters')
    await reloaded
    await page.waitForTimeout(100)
    t.equal(await page.inputValue(reason), 'half typed')
    await page.fill(reason, '')
  })

  await t.test('a refused approval is shown, not swallowed', async (t) => {
    const row = rowSel(botId)
    await page.fill(`${row} input[name=ttl]`, 'forever')
    await page.fill(`${row} input[name=reason]`, 'typo in the ttl')
    await page.click(`${row} .approve-btn`)
    await page.waitForSelector('#error:not([hidden])')
    t.match(await page.textContent('#error-text'), /refused: ttl is a duration/)
    t.equal(await page.getAttribute('#error', 'role'), 'alert')
    t.equal(await page.isVisible(`${row} .approve-btn`), true, 'the row can still be approved')
  })

  let approvalId = ''
  await t.test('approve from the row: the approval is listed with time left', async (t) => {
    const row = rowSel(ciId)
    await page.fill('#approver', 'Dana')
    await page.dispatchEvent('#approver', 'change')
    await page.selectOption(`${row} select[name=scope]`, 'exact')
    await page.fill(`${row} input[name=ttl]`, '2h')
    await page.fill(`${row} input[name=reason]`, 'the build needs this file')
    await page.click(`${row} .approve-btn`)
    const listed = await page.waitForSelector('#approvals tbody tr')
    approvalId = (await listed.getAttribute('data-id')) ?? ''
    t.ok(approvalId, 'the approval has an id')
    const cells = await listed.$$eval('td', (tds) => tds.map((td) => td.textContent ?? ''))
    t.same(
      cells.slice(0, 3),
      ['ci', 'exact', `GET origin.test:${origin.port}/private/a.txt`],
      'agent, scope, what it opens',
    )
    t.match(cells[3], /^(1h 59m \d+s|2h 0m)$/, 'time left')
    t.same(cells.slice(4, 6), ['Dana (analyst page)', 'the build needs this file'], 'who (the name given) and why')
    await page.waitForSelector(`${row}.approved`)
    t.match(await page.textContent(`${row} td.action`), /^approved \(exact, until /)
    t.equal(await page.isHidden('#error'), true, 'the earlier error is cleared')
    t.equal(await page.isHidden('#approvals-empty'), true)
  })

  await t.test('the approved request passes through the proxy', async (t) => {
    t.ok(await until(async () => (await curl([...as('ci'), blockedUrl])).status === 200, 1000), 'within a second')
    t.ok(
      origin.seen.some((r) => r.url === '/private/a.txt'),
      'the origin was reached',
    )
    const rec = await pc.waitForRecord(
      (r) => r.event === 'decision' && r.path === '/private/a.txt' && r.decision === 'allow',
    )
    t.match(rec, {
      event: 'decision',
      agent: 'ci',
      decision: 'allow',
      reason: 'allowed',
      rule: `approval:${approvalId}`,
    })
  })

  await t.test('revoke from the page: denied again within a second', async (t) => {
    await page.click(`#approvals tbody tr[data-id="${approvalId}"] .revoke-btn`)
    await page.waitForSelector(`#approvals tbody tr[data-id="${approvalId}"]`, { state: 'detached' })
    t.ok(
      await until(
        async () => (await curl([...as('ci'), blockedUrl])).headers['x-portcullis-decision'] === 'denied_path',
        1000,
      ),
      'denied again',
    )
    await page.waitForSelector('#approvals-empty:not([hidden])')
    t.equal(await page.textContent('#approvals-empty'), 'No active approvals.')
    const audit = await pc.waitForRecord(
      (r) => r.event === 'approval' && r.approval_id === approvalId && r.action === 'revoke',
    )
    t.ok(audit, 'the revocation is audited')
  })

  await t.test('rows an approval cannot lift offer no Approve; the page fits 1280 pixels', async (t) => {
    const bad = await curl(['--proxy', pc.proxyUrl, '--proxy-user', 'ci:not-the-token', blockedUrl])
    t.equal(bad.headers['x-portcullis-decision'], 'denied_auth_invalid')
    const id = bad.headers['x-portcullis-request-id'] as string
    await page.waitForSelector(rowSel(id))
    t.equal(await page.$$eval(`${rowSel(id)} .approve-btn`, (b) => b.length), 0, 'no Approve on a failed login')
    t.equal(await page.textContent(`${rowSel(id)} .not-approvable`), 'not approvable')
    t.equal(await page.isVisible(`${rowSel(id)} .dismiss-btn`), true, 'it can still be dismissed')
    t.equal(await page.isVisible(`${rowSel(botId)} .approve-btn`), true, 'a policy denial keeps its Approve')
    await page.setViewportSize({ width: 1280, height: 800 })
    const widths = await page.evaluate(() => {
      const d = (
        globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }
      ).document
      return { scroll: d.documentElement.scrollWidth, client: d.documentElement.clientWidth }
    })
    t.ok(widths.scroll <= widths.client, `no horizontal scrolling at 1280 px (${widths.scroll} <= ${widths.client})`)
    const overflow = await page.$$eval(
      '.scroll',
      (els) =>
        els
          .map((el) => el as unknown as { scrollWidth: number; clientWidth: number })
          .filter((el) => el.scrollWidth > el.clientWidth).length,
    )
    t.equal(overflow, 0, 'no table scrolls sideways either')
  })

  t.same(foreign, [], 'the page loaded nothing from outside its own origin')
  t.same(problems, [], 'no script errors or CSP violations')
  t.same(
    failed,
    ['401 GET /api/events', '400 POST /api/approvals'],
    'the only failed calls are the wrong token and the bad ttl',
  )
})

t.test('filters ask the server: a noisy agent does not push the others out of the page', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(
    t,
    originOnlyYaml([origin.port], {
      paths: ['/public/**'],
      agents: Object.fromEntries(['ci', ...NOISY].map((a) => [a, ''])),
    }),
  )
  const quiet = await curl([
    '--proxy',
    pc.proxyUrl,
    '--proxy-user',
    `ci:${TOKEN}`,
    `http://origin.test:${origin.port}/private/q`,
  ])
  const quietId = quiet.headers['x-portcullis-request-id'] as string
  t.ok(quietId, 'a denial of the quiet agent')
  // Then 216 denials of other agents, more than a page (200) holds: 18 each, pipelined on one
  // connection per agent (below the 20 a second the proxy records one by one per source and agent).
  await Promise.all(
    NOISY.map((agent) => {
      const auth = `Proxy-Authorization: ${basicAuth(agent, TOKEN)}\r\n`
      let burst = ''
      for (let i = 0; i < 18; i++)
        burst += `GET http://origin.test:${origin.port}/private/${agent}/${i} HTTP/1.1\r\nHost: origin.test\r\n${auth}${i === 17 ? 'Connection: close\r\n' : ''}\r\n`
      return rawExchange(pc.proxyPort, burst, 10_000)
    }),
  )
  const noisy = (): number => pc.decisions().filter((r) => r.agent?.startsWith('noisy') === true).length
  t.ok(await until(() => noisy() >= 216, 5000), `the flood was recorded (${noisy()} records)`)

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { page } = await newPage(browser, { viewport: { width: 1440, height: 900 } })
  await page.goto(`${pc.adminUrl}/`)
  await page.fill('#token', pc.adminToken)
  await page.click('#token-form button[type=submit]')
  await page.waitForSelector('#blocked tbody tr')
  t.equal(await page.$$eval(rowSel(quietId), (r) => r.length), 0, 'unfiltered, the newest 200 are all the noisy agent')
  await page.fill('#f-agent', 'ci')
  t.same(await waitForRows(page, [quietId]), [quietId], "the quiet agent's denial, asked of the server")
  await page.fill('#f-agent', '')
  await page.selectOption('#f-reason', 'denied_package')
  t.same(await waitForRows(page, []), [], 'every reason code is offered, denied_package too')
})
