/**
 * The shape shared by the approval and sandbox-revocation stores: a list of entries keyed by `id`,
 * each in force until it lapses, held in memory so the data path reads it synchronously. The YAML
 * file (stores/yaml-file.ts) serves one instance; the Redis hash (redis/synced-hash.ts) serves many.
 */
export interface KeyedEntry {
  readonly id: string
}

export interface KeyedStore<T extends KeyedEntry> {
  current(): readonly T[]
  /**
   * Whether the stored set has been read at least once. A file store reads it before it is made; a
   * Redis store that has not reached Redis since start does not know what it holds.
   */
  loaded(): boolean
  add(entry: T): Promise<void>
  /** Resolves false when no entry had that id. */
  remove(id: string): Promise<boolean>
  /** Called after any change, local or from another instance. */
  onChange(listener: () => void): void
  close(): Promise<void>
}

/** What a store needs to know about its entries, whichever backend holds them. */
export interface EntryRules<T extends KeyedEntry> {
  /**
   * A stored entry as read back (a hand-edited file, another version's JSON): does it have the
   * fields this version needs? Entries that fail are ignored (file) or deleted (Redis).
   */
  readonly isEntry: (v: unknown) => v is T
  /** Still in force; lapsed entries are dropped when the store next writes (file) or reads (Redis). */
  readonly isLive: (entry: T, nowMs: number) => boolean
  /** Adding an id already present keeps the first entry (who, when, why) instead of writing the new one. */
  readonly keepFirst: boolean
}
