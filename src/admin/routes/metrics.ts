import type { Route } from '../server.js'

export interface MetricsSource {
  text(): Promise<string>
  readonly contentType: string
}

/** GET /metrics — Prometheus text exposition; behind the bearer token like every route but /healthz. */
export function metricsRoutes(metrics: MetricsSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async (_req, res) => {
        const body = await metrics.text()
        res.writeHead(200, {
          'content-type': metrics.contentType,
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-store',
        })
        res.end(body)
      },
    },
  ]
}
