import { isActive, type ApprovalStore } from '../approvals/store.js'
import { indexApprovals, type ApprovalIndex } from '../policy/approvals.js'

/** How often lapsed approvals are looked for: an expired one stops applying within this. */
const EXPIRY_POLL_MS = 500

export interface LiveApprovals {
  /** The active approvals, indexed by agent: what every decision overlays. */
  index(): ApprovalIndex
  close(): void
}

/**
 * The approval index the data path reads, rebuilt whenever the store changes and whenever an
 * approval lapses; `onRebuilt` runs after each rebuild (app.ts closes connections opened under an
 * approval that is revoked or has expired, as a reload closes those it disallows).
 */
export function createLiveApprovals(store: ApprovalStore, onRebuilt: (index: ApprovalIndex) => void): LiveApprovals {
  let index: ApprovalIndex = new Map()
  const rebuild = (): void => {
    const now = Date.now()
    index = indexApprovals(store.current().filter((a) => isActive(a, now)))
    onRebuilt(index)
  }
  store.onChange(rebuild)
  rebuild()
  const timer = setInterval(() => {
    const now = Date.now()
    for (const list of index.values()) if (list.some((a) => !isActive(a, now))) return rebuild()
  }, EXPIRY_POLL_MS)
  timer.unref()
  return { index: () => index, close: () => clearInterval(timer) }
}
