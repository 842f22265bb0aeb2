/** Open tunnels and intercepted connections, so a reload can close what the new policy no longer allows. */
export interface TrackedConn {
  readonly agent: string
  readonly host: string
  readonly port: number
  close(): void
  /**
   * Bytes moved so far on the connection, both ways, and how many of them were already counted
   * towards bytes_per_day (by the periodic sweep while open; the rest is counted at close).
   */
  readonly bytesMoved?: () => number
  bytesCounted?: number
}

export interface TunnelTracker {
  add(conn: TrackedConn): () => void
  readonly size: number
  all(): Iterable<TrackedConn>
}

export function createTunnelTracker(): TunnelTracker {
  const open = new Set<TrackedConn>()
  return {
    add(conn) {
      open.add(conn)
      return () => open.delete(conn)
    },
    get size() {
      return open.size
    },
    all() {
      return open.values()
    },
  }
}
