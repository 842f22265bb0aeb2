import t from 'tap'
import { run } from '../../../src/cli/token.js'

t.test('token new never prints a token that begins with "-" (a CLI would read it as an option)', async (t) => {
  // One base64url token in 64 begins with "-": 500 draws would show one almost surely (1 - (63/64)^500 > 99.9 %).
  const tokens: string[] = []
  for (let i = 0; i < 500; i++) {
    let out = ''
    const code = await run(['new'], { stdout: (s) => (out += s), stderr: () => undefined, env: {} })
    t.equal(code, 0)
    tokens.push(/^token: (\S+)$/m.exec(out)?.[1] ?? '')
  }
  t.ok(
    tokens.every((tok) => /^[A-Za-z0-9_][A-Za-z0-9_-]{31}$/.test(tok)),
    'every token is 32 base64url characters, none first a "-"',
  )
  t.equal(new Set(tokens).size, tokens.length, 'tokens are random')
})
