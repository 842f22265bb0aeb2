import type { Cidr } from '../net/host.js'
import type { DenyReason } from './reasons.js'

export type Mode = 'enforce' | 'audit'
export type InterceptMode = 'auto' | 'never' | 'always'
/** Where a rule came from, as the SPEC spells it: `builders.allow[2]`, `builders.deny[0]`. */
export type RuleId = string

/** Facts known when a CONNECT arrives (or before an absolute-form request's path is looked at). */
export interface ConnectFacts {
  readonly agent: string
  /** Output of net/host.normalizeHost: lower-case, IDNA A-label, canonical IP literal (IPv6 without brackets). */
  readonly host: string
  readonly port: number
}

/** Facts of one HTTP request (plain, or inside an intercepted tunnel). */
export interface RequestFacts extends ConnectFacts {
  /** Upper-case method token. */
  readonly method: string
  readonly scheme: 'http' | 'https'
  /** Output of net/url-path.normalizePath: starts with `/`, unreserved %XX decoded, dot segments removed, no query. */
  readonly path: string
  /** Raw query string without the `?`; '' when absent. */
  readonly query: string
}

export type Decision =
  | { readonly verdict: 'allow'; readonly reason: 'allowed'; readonly ruleId: RuleId }
  | {
      readonly verdict: 'deny'
      readonly reason: DenyReason
      readonly ruleId: RuleId | null
      /** Machine-safe detail for logs only; never user-controlled text. */
      readonly detail?: string
      /**
       * A sentence for the denial body that says what is allowed instead, built from the policy only
       * (never from request text); replaces the reason's generic sentence. Not recorded.
       */
      readonly explanation?: string
      readonly retryAfterS?: number
    }

export type AllowDecision = Extract<Decision, { verdict: 'allow' }>
export type DenyDecision = Extract<Decision, { verdict: 'deny' }>

/** A CONNECT verdict: deny, or allow with how the tunnel must be handled. */
export type ConnectDecision =
  | DenyDecision
  | (AllowDecision & {
      readonly via: 'tunnel' | 'intercept'
      /**
       * Intercepted under a `*.domain` rule: one leaf certificate for the host's parent
       * (`*.b.example.com` for `a.b.example.com`) serves every sibling, so distinct subdomains
       * cannot make the proxy mint a certificate each.
       */
      readonly wildcardLeaf?: boolean
    })

export interface AgentLimits {
  readonly requestsPerMinute: number | null
  readonly concurrentConnections: number | null
  readonly bytesPerDay: number | null
}

export interface CompiledAgent {
  readonly id: string
  /** sha256 of the token (32 bytes) or null when the agent is matched by source only. */
  readonly tokenSha256: Buffer | null
  /** With a token: the token is accepted only from these sources (when non-empty). Without: these sources identify the agent. */
  readonly sourceCidrs: readonly Cidr[]
  readonly groups: readonly string[]
  readonly mode: Mode
  readonly limits: AgentLimits
  /** A template for sandbox credentials (SPEC §9): `<id>+<sandbox>` users with signed tokens. */
  readonly sandboxes?: boolean
}
