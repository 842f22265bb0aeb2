import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { PortcullisError } from '../errors.js'
import { isWeakAdminToken, MIN_ADMIN_TOKEN_CHARS } from '../identity/weak-tokens.js'

export interface AdminToken {
  readonly token: string
  /** Set when the token was generated into (or read from) a file rather than given in the environment. */
  readonly file: string | null
  readonly created: boolean
}

/**
 * PORTCULLIS_ADMIN_TOKEN when set; otherwise the token in `file`, generated
 * (32 random bytes, base64url) and written 0600 on first start.
 */
export async function loadAdminToken(env: NodeJS.ProcessEnv, file: string): Promise<AdminToken> {
  const fromEnv = env.PORTCULLIS_ADMIN_TOKEN
  if (fromEnv && fromEnv.trim() !== '') return { token: fromEnv.trim(), file: null, created: false }
  try {
    const existing = (await readFile(file, 'utf8')).trim()
    if (existing !== '') return { token: existing, file, created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  await mkdir(dirname(file), { recursive: true, mode: 0o755 })
  await writeFile(file, `${token}\n`, { mode: 0o600 })
  return { token, file, created: true }
}

/** Where the generated admin token lives: beside the CA key (certs/admin-token by default). */
export function adminTokenFile(caKey: string): string {
  return join(dirname(caKey), 'admin-token')
}

/** The admin token for `portcullis start`, saying where it came from when it is not from the environment. */
export async function loadStartToken(env: NodeJS.ProcessEnv, caKey: string, log: Logger): Promise<string> {
  const t = await loadAdminToken(env, adminTokenFile(caKey))
  // A Bearer credential is one token68 word: a token with a space (a passphrase) could never be sent.
  if (!/^[\x21-\x7e]+$/.test(t.token))
    throw new PortcullisError(
      'PC_ERR_ADMIN_TOKEN',
      `the admin token ${t.file === null ? 'in PORTCULLIS_ADMIN_TOKEN' : `in ${t.file}`} holds a space or a character outside printable ASCII, so no Authorization: Bearer header can carry it; use one word (portcullis token new makes one)`,
    )
  if (t.created)
    log.info({ code: 'PC_ADMIN_TOKEN_CREATED', file: t.file }, 'admin token generated; read it from this file')
  else if (t.file !== null)
    log.info(
      { code: 'PC_ADMIN_TOKEN_FILE', file: t.file },
      'admin token read from this file (PORTCULLIS_ADMIN_TOKEN is unset)',
    )
  if (isWeakAdminToken(t.token))
    log.warn(
      { code: 'PC_WEAK_ADMIN_TOKEN', min_chars: MIN_ADMIN_TOKEN_CHARS },
      'the admin token is a well-known value or short: anyone who can reach the admin API may approve and revoke; set a long random one (portcullis token new)',
    )
  return t.token
}
