/**
 * Issuing a sandbox credential (SPEC §9), the one implementation behind `portcullis sandbox issue`
 * (offline, with the key in its environment) and `POST /api/sandboxes`: both answer the same fields.
 */
import { ulid } from 'ulid'
import type { CompiledPolicy } from '../policy/compiled.js'
import { formatAuthority } from '../net/host.js'
import {
  encodeSandboxToken,
  labelProblem,
  parseSigningKey,
  sandboxUser,
  type SandboxLabels,
  type SigningKey,
} from './sandbox-token.js'

export interface IssueRequest {
  readonly agent: string
  readonly ttlMs: number
  readonly labels: SandboxLabels
}

/** The answer of both issue paths; the token is shown once and kept nowhere. */
export interface IssuedSandbox {
  readonly id: string
  readonly agent: string
  readonly user: string
  readonly token: string
  readonly labels: SandboxLabels
  readonly expires_at: string
  readonly proxy_url: string
  /** Ready to paste into the sandbox's environment (curl reads only the lower-case ones). */
  readonly proxy_env: Readonly<Record<'HTTP_PROXY' | 'HTTPS_PROXY' | 'http_proxy' | 'https_proxy', string>>
  /** Present when proxy_url names an address a sandbox elsewhere likely cannot reach (LOOPBACK_GUESS). */
  readonly warning?: string
}

export type IssueOutcome =
  | { readonly ok: true; readonly sandbox: IssuedSandbox }
  | {
      readonly ok: false
      readonly error: 'unknown_agent' | 'not_a_template' | 'bad_ttl' | 'bad_labels'
      readonly message: string
    }

/** Where issued credentials say the proxy is, and what an operator must hear about that address. */
export interface SandboxProxy {
  /** `host:port`, for proxy_url and proxy_env. */
  readonly authority: string
  /** Set when the address is a guess a sandbox elsewhere cannot use (the answer carries it). */
  readonly warning: string | null
}

/** A listen host that means "every address": no address a sandbox could be given. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === ''
}

/** Why a listener on every address names loopback in proxy_url, and what to set (answers, log, `check`). */
export const LOOPBACK_GUESS =
  "listen.host is a wildcard address and identity.sandbox_proxy is not set, so proxy_url names loopback, which only a client on the proxy's own host (not in a container) reaches: set identity.sandbox_proxy to the HOST:PORT sandboxes reach the proxy at"

/**
 * Where sandboxes reach the proxy: identity.sandbox_proxy when set, else the listener (`port`: the
 * port it is bound to). A listener on every address names none a sandbox can use; loopback is then
 * named, with a warning, never silently.
 */
export function sandboxProxy(
  identity: { readonly sandboxProxy: string | null },
  listen: { readonly host: string },
  port: number,
): SandboxProxy {
  if (identity.sandboxProxy !== null) return { authority: identity.sandboxProxy, warning: null }
  if (!isWildcardHost(listen.host)) return { authority: formatAuthority(listen.host, port), warning: null }
  return { authority: formatAuthority(listen.host === '::' ? '::1' : '127.0.0.1', port), warning: LOOPBACK_GUESS }
}

export function issueSandbox(
  policy: CompiledPolicy,
  maxTtlMs: number,
  key: SigningKey,
  req: IssueRequest,
  proxy: SandboxProxy,
  nowMs: number = Date.now(),
): IssueOutcome {
  const agent = policy.agents.get(req.agent)
  if (agent === undefined)
    return { ok: false, error: 'unknown_agent', message: `no agent '${req.agent}' in the config` }
  if (agent.sandboxes !== true)
    return {
      ok: false,
      error: 'not_a_template',
      message: `agent '${req.agent}' is not a sandbox template; add sandboxes: true to its entry`,
    }
  if (!(req.ttlMs >= 1000) || req.ttlMs > maxTtlMs)
    return {
      ok: false,
      error: 'bad_ttl',
      message: `ttl must be a duration from 1s up to identity.max_sandbox_ttl (${Math.round(maxTtlMs / 1000)} s)`,
    }
  const problem = labelProblem(req.labels)
  if (problem !== null) return { ok: false, error: 'bad_labels', message: problem }
  // The id's time part is the issue time (the token checks it): revocations are kept until then + max ttl.
  // Rounded up, not down: exp = iat + ttl then lives at least the ttl asked for (a 1s credential was
  // up to a second short, expired by the time the CLI returned), and exp - iat stays the ttl, within
  // max_sandbox_ttl. An iat up to a second ahead is well within the clock skew verifiers allow.
  const iat = Math.ceil(nowMs / 1000)
  const id = ulid(iat * 1000)
  const exp = iat + Math.ceil(req.ttlMs / 1000)
  const token = encodeSandboxToken({ agent: agent.id, id, iat, exp, labels: req.labels }, key)
  const user = sandboxUser(agent.id, id)
  return {
    ok: true,
    sandbox: {
      id,
      agent: agent.id,
      user,
      token,
      labels: req.labels,
      expires_at: new Date(exp * 1000).toISOString(),
      ...proxyLines(user, token, proxy.authority),
      ...(proxy.warning !== null ? { warning: proxy.warning } : {}),
    },
  }
}

/** The proxy URL and environment lines of a credential, for a sandbox reaching the proxy at `proxy` (host:port). */
export function proxyLines(user: string, token: string, proxy: string): Pick<IssuedSandbox, 'proxy_url' | 'proxy_env'> {
  const proxyUrl = `http://${user}:${token}@${proxy}`
  return {
    proxy_url: proxyUrl,
    proxy_env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, http_proxy: proxyUrl, https_proxy: proxyUrl },
  }
}

/** `task=T-123` → ['task', 'T-123']; null when there is no `=` or no key. */
export function parseLabel(text: string): readonly [string, string] | null {
  const eq = text.indexOf('=')
  return eq <= 0 ? null : [text.slice(0, eq), text.slice(eq + 1)]
}

/** The signing keys named by the config, read from `env`: the current one first (it signs), then the previous one. */
export interface SandboxKeys {
  /** Signs new credentials; null when its variable is unset or unusable. */
  readonly signing: SigningKey | null
  /** Accepted: current then previous. */
  readonly verifying: readonly SigningKey[]
  /** Each variable that is set but unusable, or the current one missing while templates exist. */
  readonly problems: readonly string[]
}

export function readSandboxKeys(
  identity: { readonly signingKeyEnv: string; readonly previousSigningKeyEnv: string | null },
  env: NodeJS.ProcessEnv,
): SandboxKeys {
  const problems: string[] = []
  const read = (name: string | null): SigningKey | null => {
    if (name === null) return null
    const text = env[name]
    if (text === undefined || text === '') return null
    const k = parseSigningKey(text)
    if ('problem' in k) {
      problems.push(`environment variable ${name} ${k.problem}`)
      return null
    }
    return k
  }
  const signing = read(identity.signingKeyEnv)
  const previous = read(identity.previousSigningKeyEnv)
  if (signing === null && !problems.some((p) => p.includes(identity.signingKeyEnv)))
    problems.push(`environment variable ${identity.signingKeyEnv} (identity.signing_key_env) is not set`)
  return { signing, verifying: [signing, previous].filter((k): k is SigningKey => k !== null), problems }
}
