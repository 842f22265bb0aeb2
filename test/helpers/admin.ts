import { ADMIN_TOKEN } from './start-portcullis.js'

/** A JSON call to the admin API with the test token. */
export async function adminCall<T = unknown>(
  adminUrl: string,
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T }
}

/**
 * One sample of `name` from /metrics (NaN when absent), on a connection of its own: with workers,
 * each connection may reach another worker (each answers for all of them).
 */
export async function metric(adminUrl: string, name: string, token = ADMIN_TOKEN): Promise<number> {
  const res = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}`, connection: 'close' } })
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1))
}

// Polling lives in poll.ts; re-exported for tests written against this module.
export { until } from './poll.js'
