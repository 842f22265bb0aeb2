import type { ReloadOutcome } from '../../config/watch.js'
import { sendJson, type Route } from '../server.js'

/** `POST /api/reload`: load the config now; 200 with the generation in force, or 422 with why it was refused. */
export function reloadRoutes(reload: (trigger: string) => Promise<ReloadOutcome>, generation: () => number): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/reload',
      handler: async (_req, res) => {
        const outcome = await reload('api')
        sendJson(
          res,
          outcome.ok ? 200 : 422,
          outcome.ok
            ? { ok: true, generation: generation() }
            : { ok: false, generation: generation(), error: outcome.error },
        )
      },
    },
  ]
}
