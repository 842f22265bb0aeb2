import { sendJson, type Route } from '../server.js'

export interface MetricsSource {
  text(): Promise<string>
  readonly contentType: string
}

/**
 * GET /metrics — Prometheus text exposition; behind the bearer token like every route but /healthz.
 * 503 when the numbers cannot be had whole (with workers, a worker's part is late): better a failed
 * scrape than counters that go backwards.
 */
export function metricsRoutes(metrics: MetricsSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async (_req, res) => {
        let body: string
        try {
          body = await metrics.text()
        } catch (err) {
          return sendJson(res, 503, {
            error: 'metrics_unavailable',
            message: `the metrics of every worker could not be gathered: ${err instanceof Error ? err.message : String(err)}`,
          })
        }
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
