import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'

/**
 * Free loopback ports, shared by the tests and the bench (bench/lib): each is picked by listening on
 * port 0, and all n are held at once, so they differ; then released for the caller to bind.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer().listen(0, '127.0.0.1'))
  await Promise.all(servers.map((s) => once(s, 'listening')))
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  return ports
}

/** A loopback port that nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1)
  return port as number
}

/**
 * A loopback port that stays closed for the whole run. A released `freePort()` may be taken by any
 * server another test starts on port 0 meanwhile (CI once saw an admin API answer there); port 9 (discard) lies
 * below every ephemeral range, so no such server can, and nothing in the test namespace listens on it.
 */
export const CLOSED_PORT = 9
