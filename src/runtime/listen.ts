import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PortcullisError } from '../errors.js'
import type { FdLimit } from '../net/fd-limit.js'
import { formatAuthority } from '../net/host.js'

export async function listenOn(server: Server, host: string, port: number, what: string): Promise<AddressInfo> {
  server.listen(port, host)
  try {
    await once(server, 'listening')
  } catch (cause) {
    // The errno says what to do: EADDRINUSE (another process has the port), EACCES (a port below 1024), EADDRNOTAVAIL.
    const code = (cause as NodeJS.ErrnoException).code
    const why = code === 'EADDRINUSE' ? ': the address is in use' : code === undefined ? '' : ` (${code})`
    throw new PortcullisError('PC_ERR_LISTEN', `cannot listen for ${what} on ${formatAuthority(host, port)}${why}`, {
      cause,
    })
  }
  return server.address() as AddressInfo
}

/**
 * listen.max_connections, or with `auto` what the descriptor limit allows: a proxied connection holds
 * two (client and upstream), and some are kept for the admin API, Redis, files and the CA.
 */
export function maxConnectionsFor(configured: number | null, nofile: FdLimit): number {
  if (configured !== null) return configured
  if (nofile.soft === null) return 16_384
  return Math.max(16, Math.floor((nofile.soft - 64) / 2))
}
