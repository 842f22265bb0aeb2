/**
 * The end of every helper process the bench spawns (origin, bare, floor and reference proxies):
 * print what the parent waits for as one JSON line, then run until SIGTERM, SIGINT or the end of
 * stdin (the parent gone), closing what `close` closes and exiting 200 ms later.
 */
export function serveUntilStopped(info: Readonly<Record<string, unknown>>, close: () => void = () => {}): void {
  const stop = (): void => {
    close()
    setTimeout(() => process.exit(0), 200).unref()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
  process.stdout.write(`${JSON.stringify(info)}\n`)
}
