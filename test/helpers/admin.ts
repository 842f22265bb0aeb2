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

// Polling lives in poll.ts; re-exported for tests written against this module.
export { until } from './poll.js'
