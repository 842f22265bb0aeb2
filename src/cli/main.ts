#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { ConfigError, PortcullisError } from '../errors.js'
import { EXIT_DENIED, EXIT_USAGE, type CliIo, type CliVerb } from './io.js'

const USAGE = `usage: portcullis <command> [options]

  start     [--config F]                          run the proxy and the admin API
  check     [--config F] [--tests F]              validate config, print a policy summary, run the policy tests
  explain   --agent A [--method M] URL            decision and rule for a request, offline
  blocked   [--agent A] [--host H] [--reason R] [--sandbox ID] [--label k=v] [--since 1h] [--limit N] [--follow] [--json]
            [--admin URL] [--config F]
  approve   ID [--scope exact|host|path-prefix] [--ttl 24h] [--reason TEXT] [--by NAME] [--sandbox-only]
            [--json] [--admin URL] [--config F]
  approvals [--revoke ID [--by NAME]] [--json] [--admin URL] [--config F]
  suggest   [--agent A | --group G] [--since 7d] [--until T] [--source admin|redis|FILE] [--diff] [--json]
            the smallest rules that would have allowed what was denied
  replay    --config NEW [--against OLD] [--since 24h] [--until T] [--agent A] [--source admin|redis|FILE]
            [--fail-on-new-denials] [--json]
            recorded requests decided again under NEW: what flips
  sandbox   issue --agent A --ttl 2h [--label k=v]… [--proxy HOST:PORT] [--json]
            | revoke ID [--reason TEXT] [--by NAME] | list [--json]
            sandbox credentials
  ca        init|show|path|bundle [--out F]       the interception CA (bundle: system roots plus the CA)
  token     new|hash                              a new agent token and its sha256: form
  version                                         the version of portcullis (also --version, -V)

Every command takes --config F (else PORTCULLIS_CONFIG, else config/portcullis.yaml).
blocked, approve, approvals and sandbox revoke|list (and sandbox issue without the signing key) ask a
running instance: --admin URL (default: the config's admin section), token from PORTCULLIS_ADMIN_TOKEN
(else the admin-token file beside tls.ca_key).
Exit codes: 0 success, 1 a denial, failed check or failed request, 2 usage or config error.
`

/** `portcullis VERB --help`: the verb's lines of USAGE (its line and the indented ones after it), and the footer. */
function verbUsage(verb: string): string {
  const lines = USAGE.split('\n')
  const at = lines.findIndex((l) => l.startsWith(`  ${verb} `))
  let end = at + 1
  while (end < lines.length && lines[end]?.startsWith('            ')) end++
  const footer = USAGE.slice(USAGE.indexOf('Every command'))
  return `usage: portcullis ${verb} …\n\n${lines.slice(at, end).join('\n')}\n\n${footer}`
}

/** The version in package.json (beside dist/ and src/, in the repository and the image alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Verbs load lazily so `portcullis token` does not pay for the proxy's imports. */
const VERBS: Record<string, () => Promise<{ run: CliVerb }>> = {
  start: () => import('./start.js'),
  check: () => import('./check.js'),
  explain: () => import('./explain.js'),
  token: () => import('./token.js'),
  ca: () => import('./ca.js'),
  blocked: () => import('./blocked.js'),
  approve: () => import('./approve.js'),
  approvals: () => import('./approvals.js'),
  suggest: () => import('./suggest.js'),
  replay: () => import('./replay.js'),
  sandbox: () => import('./sandbox.js'),
}

async function main(argv: string[]): Promise<number> {
  const io: CliIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env }
  const [verb, ...rest] = argv
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    io.stdout(USAGE)
    return verb ? 0 : EXIT_USAGE
  }
  if (verb === 'version' || verb === '--version' || verb === '-V') {
    io.stdout(`portcullis ${packageVersion()}\n`)
    return 0
  }
  // `portcullis blocked | head -1`: a reader that has gone away ends the command quietly, like other
  // Unix tools, instead of an EPIPE stack trace. (`start` leaves stdout to its log destination.)
  if (verb !== 'start') {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
      throw err
    })
  }
  const load = VERBS[verb]
  if (!load) {
    io.stderr(`portcullis: unknown command '${verb}'\n\n${USAGE}`)
    return EXIT_USAGE
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(verbUsage(verb))
    return 0
  }
  try {
    return await (await load()).run(rest, io)
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`portcullis: invalid configuration (${err.code})\n${err.message}\n`)
      return EXIT_USAGE
    }
    if (err instanceof PortcullisError) {
      io.stderr(`portcullis: ${err.message} (${err.code})\n`)
      // Records that cannot be read are an input error (2): 1 is replay's gate finding a new denial.
      return err.code === 'PC_ERR_ADMIN_REQUEST' ? EXIT_DENIED : EXIT_USAGE
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`portcullis ${verb}: ${err.message}\n`)
      return EXIT_USAGE
    }
    io.stderr(`portcullis: internal error (PC_ERR_INTERNAL): ${String(err)}\n`)
    return EXIT_USAGE
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  () => {
    process.exitCode = EXIT_USAGE
  },
)
