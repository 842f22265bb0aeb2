/** Where a CLI verb writes. Verbs print; they never call process.exit themselves. */
export interface CliIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: NodeJS.ProcessEnv
}

/** Exit codes per SPEC §6. */
export const EXIT_OK = 0
export const EXIT_DENIED = 1
export const EXIT_USAGE = 2

/** A CLI verb: parses its own flags (node:util parseArgs), returns the exit code. */
export type CliVerb = (args: readonly string[], io: CliIo) => Promise<number>
