/** Where a CLI verb writes. Verbs print; they never call process.exit themselves. */
export interface CliIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: NodeJS.ProcessEnv
}

/**
 * Text for a terminal: admin-entered text (a reason, a name) and record fields (a hostile request's
 * path) may hold control characters; printed raw, a newline splits a row and an escape sequence
 * retitles or repaints the terminal. Each C0 and C1 control character shows as U+FFFD instead.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd')
}

/** Exit codes per SPEC §6. */
export const EXIT_OK = 0
export const EXIT_DENIED = 1
export const EXIT_USAGE = 2

/** A CLI verb: parses its own flags (node:util parseArgs), returns the exit code. */
export type CliVerb = (args: readonly string[], io: CliIo) => Promise<number>
