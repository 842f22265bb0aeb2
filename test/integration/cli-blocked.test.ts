import t from 'tap'
import { runBlocked } from '../../src/cli/blocked.js'
import { startPortcullis } from '../helpers/start-portcullis.js'
import { startHttpOrigin } from '../helpers/origins.js'
import { curl } from '../helpers/clients.js'
import { originOnlyYaml, TOKEN } from '../helpers/config.js'
import { until } from '../helpers/poll.js'

t.test('blocked --follow: rows that arrive later line up with the header', async (t) => {
  const origin = await startHttpOrigin(t)
  const pc = await startPortcullis(t, originOnlyYaml([origin.port], { paths: ['/public/**'] }))
  const deny = (path: string): ReturnType<typeof curl> =>
    curl(['--proxy', pc.proxyUrl, '--proxy-user', `ci:${TOKEN}`, `http://origin.test:${origin.port}${path}`])
  await deny('/a')
  let out = ''
  const ctl = new AbortController()
  const running = runBlocked(
    ['--admin', pc.adminUrl, '--follow'],
    { stdout: (s) => void (out += s), stderr: () => undefined, env: { PORTCULLIS_ADMIN_TOKEN: pc.adminToken } },
    ctl.signal,
  )
  t.ok(await until(() => out.split('\n').length >= 3), 'the header and the first row')
  await deny(`/private/${'deep/'.repeat(20)}file.txt`)
  await deny('/b')
  t.ok(await until(() => out.split('\n').filter(Boolean).length >= 4), 'followed rows arrive')
  ctl.abort()
  t.equal(await running, 0)
  const lines = out.split('\n').filter(Boolean)
  const header = lines[0] ?? ''
  const reasonAt = header.indexOf('REASON')
  const ruleAt = header.indexOf('RULE ')
  for (const line of lines.slice(1)) {
    t.match(line.slice(reasonAt), /^denied_path /, `REASON column aligned: ${line}`)
    t.match(line.slice(ruleAt), /^g\.allow\[0\]/, 'RULE column aligned')
  }
  t.match(out, /…/, 'the long path was cut to its column')
})
