import type { Route } from '../server.js'
import { sendJson } from '../server.js'

export interface HealthSource {
  /** Policy generation in force (1 at start, +1 per accepted reload). */
  generation(): number
  /** The last refused reload, if the file on disk is currently invalid. */
  configError(): string | null
  /** Problems with the policy in force that do not stop it (e.g. a credential variable that is not set). */
  warnings(): readonly string[]
  /** Subsystems that must be up to serve traffic; readiness reflects them. */
  ready(): boolean
  startedAt: string
}

export function healthRoutes(src: HealthSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      open: true,
      handler: (_req, res) => {
        const error = src.configError()
        sendJson(res, 200, {
          status: 'ok',
          generation: src.generation(),
          started_at: src.startedAt,
          config_error: error,
          warnings: src.warnings(),
        })
      },
    },
    {
      method: 'GET',
      path: '/readyz',
      // Open like /healthz: readiness probes (load balancers, Kubernetes) carry no token, and it says only yes or no.
      open: true,
      handler: (_req, res) => sendJson(res, src.ready() ? 200 : 503, { ready: src.ready() }),
    },
  ]
}
