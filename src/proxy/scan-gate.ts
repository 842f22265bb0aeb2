/**
 * Per-agent admission for inspections: at most `maxRunning` in flight for one agent, at most
 * `maxQueued` more waiting their turn in arrival order, and past that an immediate `busy`. One agent
 * can then hold no more than its share of the scan workers and of the memory bodies take while read,
 * however many requests it opens. No I/O, no clock.
 */

export interface ScanSlot {
  /** Hands the slot to the agent's next waiting inspection, if any. Idempotent. */
  release(): void
}

export interface ScanGate {
  /** A slot for `agent` once one is free, or 'busy' at once when its queue is full too. */
  enter(agent: string | null): Promise<ScanSlot | 'busy'>
}

interface Lane {
  running: number
  readonly queue: Array<(slot: ScanSlot) => void>
}

export function createScanGate(maxRunning: number, maxQueued: number): ScanGate {
  // Lanes exist only while an agent has something running, so the map does not grow with every agent seen.
  const lanes = new Map<string | null, Lane>()

  const slotFor = (agent: string | null, lane: Lane): ScanSlot => {
    let released = false
    return {
      release() {
        if (released) return
        released = true
        const next = lane.queue.shift()
        if (next !== undefined) return next(slotFor(agent, lane))
        lane.running--
        if (lane.running === 0) lanes.delete(agent)
      },
    }
  }

  return {
    enter(agent) {
      let lane = lanes.get(agent)
      if (lane === undefined) {
        lane = { running: 0, queue: [] }
        lanes.set(agent, lane)
      }
      if (lane.running < maxRunning) {
        lane.running++
        return Promise.resolve(slotFor(agent, lane))
      }
      if (lane.queue.length >= maxQueued) return Promise.resolve('busy')
      const queue = lane.queue
      return new Promise((resolve) => queue.push(resolve))
    },
  }
}
