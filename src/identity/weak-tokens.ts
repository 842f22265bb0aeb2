import { createHash } from 'node:crypto'
import type { CompiledPolicy } from '../policy/compiled.js'

/**
 * Tokens anyone could guess: the values examples and tutorials use. An agent whose configured hash is
 * one of these is as good as unauthenticated; `check` and `start` say so.
 */
const WELL_KNOWN = [
  '',
  'test',
  'testing',
  'token',
  'secret',
  'password',
  'passw0rd',
  'changeme',
  'change-me',
  'admin',
  'example',
  'demo',
  'default',
  'letmein',
  'portcullis',
  '1234',
  '12345',
  '123456',
  '12345678',
  'qwerty',
]

const KNOWN_HASHES = new Map(WELL_KNOWN.map((t) => [createHash('sha256').update(t).digest('hex'), t]))

/** Agents whose token is a well-known value, with the value (it is no secret). */
export function weakTokens(policy: CompiledPolicy): Array<{ readonly agent: string; readonly token: string }> {
  const out: Array<{ agent: string; token: string }> = []
  for (const agent of policy.agents.values()) {
    const token = agent.tokenSha256 === null ? undefined : KNOWN_HASHES.get(agent.tokenSha256.toString('hex'))
    if (token !== undefined) out.push({ agent: agent.id, token })
  }
  return out
}

/** Shorter than this, an admin token is weak whatever its value (the generated one has 43 characters). */
export const MIN_ADMIN_TOKEN_CHARS = 16

/** An admin token anyone could guess: a well-known value, or too short to resist guessing. */
export function isWeakAdminToken(token: string): boolean {
  return token.length < MIN_ADMIN_TOKEN_CHARS || KNOWN_HASHES.has(createHash('sha256').update(token).digest('hex'))
}
