import { createHash, randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`
}

const USAGE = 'usage: portcullis token new | portcullis token hash TOKEN (or the token on stdin)\n'

/** `token new` prints a random token and the sha256: form for the config; `token hash` hashes a given one. */
export const run: CliVerb = async (args, io) => {
  // --config is accepted (every verb takes it) and has no effect here.
  const { positionals } = parseArgs({
    args: [...args],
    options: { config: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [sub, value, extra] = positionals
  if (extra !== undefined) {
    io.stderr(USAGE)
    return EXIT_USAGE
  }
  if (sub === 'new' && value === undefined) {
    // base64url may begin with `-`, which `token hash <token>` (and other CLIs) would read as an option.
    let token = randomBytes(24).toString('base64url')
    while (token.startsWith('-')) token = randomBytes(24).toString('base64url')
    io.stdout(`token: ${token}\nconfig: ${hashToken(token)}\n`)
    io.stdout(
      `# put the config line in the agent's entry as  token: ${hashToken(token)}\n# give the sandbox  HTTP_PROXY=http://<agent-id>:${token}@<proxy-host>:3128\n`,
    )
    return EXIT_OK
  }
  if (sub === 'hash') {
    const token = value ?? (await readStdin()).trim()
    if (!token) {
      io.stderr(USAGE)
      return EXIT_USAGE
    }
    io.stdout(`${hashToken(token)}\n`)
    return EXIT_OK
  }
  io.stderr(USAGE)
  return EXIT_USAGE
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
