import { parseArgs } from 'node:util'
import { createApp } from '../app.js'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { EXIT_OK, type CliVerb } from './io.js'

/** `portcullis start`: load config, listen, SIGHUP reload, SIGTERM/SIGINT drain. Resolves only when the process should exit. */
export const run: CliVerb = async (args, io) => {
  const { values } = parseArgs({ args: [...args], options: { config: { type: 'string' } }, strict: true })
  const file = resolveConfigPath(values.config, io.env)
  const config = await loadConfig(file, io.env)
  const app = createApp(config, { env: io.env, watch: true })
  await app.start()
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      app.loggers.ops.info({ code: 'PC_STOPPING', signal }, 'stopping')
      app.close().then(resolve, resolve)
    }
    process.on('SIGHUP', () => void app.reload('sighup'))
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  return EXIT_OK
}
