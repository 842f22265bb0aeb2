import { parseArgs } from 'node:util'
import { createApp } from '../app.js'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { EXIT_OK, type CliVerb } from './io.js'
import { raiseNofile } from '../net/fd-limit.js'
import { PortcullisError } from '../errors.js'
import { vetPolicyTests } from '../runtime/policy-tests.js'
import { followPrimary, leavePrimary, reportListening, superviseIfMany } from '../runtime/workers.js'

/** On SIGTERM/SIGINT, what is in flight gets this long to finish (inside Docker's default 10 s stop timeout). */
export const DRAIN_MS = 8000

/** `portcullis start`: load config, listen, SIGHUP reload, SIGTERM/SIGINT drain. Resolves only when the process should exit. */
export const run: CliVerb = async (args, io) => {
  try {
    return await startAndServe(args, io)
  } finally {
    // A worker that failed anywhere (a config a replacement cannot read, say) must exit, to be retried.
    leavePrimary()
  }
}

const startAndServe: CliVerb = async (args, io) => {
  const { values } = parseArgs({ args: [...args], options: { config: { type: 'string' } }, strict: true })
  const file = resolveConfigPath(values.config, io.env)
  const config = await loadConfig(file, io.env)
  // SPEC §10: a policy whose tests fail does not start, as a reload with failing tests is refused.
  const failing = vetPolicyTests(config)
  if (failing !== null) throw new PortcullisError('PC_ERR_POLICY_TESTS', `${failing}; see portcullis check`)
  // workers > 1: this process only supervises them (runtime/workers.ts); each worker runs what follows.
  const supervised = await superviseIfMany(config, io.env, DRAIN_MS)
  if (supervised !== null) return supervised
  // Before anything is opened: the descriptors every connection needs come from this limit.
  const nofile = raiseNofile()
  const app = createApp(config, { env: io.env, watch: true })
  app.loggers.ops[nofile.error === null ? 'info' : 'warn'](
    {
      code: 'PC_FD_LIMIT',
      soft_before: nofile.before.soft,
      soft: nofile.after.soft,
      hard: nofile.after.hard,
      ...(nofile.error === null ? {} : { error: nofile.error }),
    },
    nofile.error === null
      ? 'open file limit (RLIMIT_NOFILE): the soft limit is raised to the hard one'
      : 'open file limit (RLIMIT_NOFILE) could not be raised; raise it with ulimit -n before starting',
  )
  await app.start()
  reportListening()
  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        // A second signal: stop waiting for what is still in flight.
        app.loggers.ops.warn({ code: 'PC_STOPPING_NOW', signal }, 'stopping now; connections still open are cut')
        app.close().then(resolve, resolve)
        return
      }
      stopping = true
      app.loggers.ops.info(
        { code: 'PC_STOPPING', signal, drain_ms: DRAIN_MS },
        'stopping: no new connections; requests and tunnels in flight may finish',
      )
      app.close({ drainMs: DRAIN_MS }).then(resolve, resolve)
    }
    process.on('SIGHUP', () => void app.reload('sighup'))
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    // In a worker, the primary relays the signals it gets; a relayed drain while draining is not a second signal.
    followPrimary({
      stop: (now) => {
        if (!stopping) stop('primary')
        if (now) stop('primary')
      },
      reload: () => void app.reload('sighup'),
    })
  })
  return EXIT_OK
}
