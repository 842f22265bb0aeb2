import t from 'tap'
import { parseConfigText } from '../../../src/config/load.js'
import { weakTokens } from '../../../src/identity/weak-tokens.js'

const hashOf = async (s: string): Promise<string> =>
  (await import('node:crypto')).createHash('sha256').update(s).digest('hex')

t.test('a token that is a well-known value is named; a random one is not', async (t) => {
  const policy = parseConfigText(
    `agents:
  - { id: lazy, token: "sha256:${await hashOf('test')}" }
  - { id: careful, token: "sha256:${await hashOf('q8Jc1-not-guessable-Zr0')}" }
  - { id: by-source, source_cidrs: [10.0.0.0/8] }
`,
    'inline.yaml',
  ).policy
  t.same(weakTokens(policy), [{ agent: 'lazy', token: 'test' }])
})
