import type { Logger } from 'pino'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { createAdminServer } from '../admin/server.js'
import { loadStartToken } from '../admin/token.js'
import {
  createFileApprovalStore,
  createRevokedApprovalsFile,
  revokedApprovalsFileFor,
} from '../approvals/file-store.js'
import type { Code } from '../codes.js'
import { templateOf } from '../identity/sandbox-auth.js'
import { createFileRevocationStore, revocationsFileFor } from '../sandboxes/file-revocations.js'
import type { KeyedStore, KeyedEntry } from '../stores/keyed-store.js'
import { createInterceptor } from '../proxy/intercept.js'
import { closeDisallowed } from '../proxy/revalidate.js'
import { ensureCa, loadCa } from '../tls/ca.js'
import { createLeafCertCache } from '../tls/leaf-certs.js'
import { adminRoutes } from './admin-routes.js'
import { createDecisionLookup } from './decision-lookup.js'
import { listenOn } from './listen.js'
import { createLiveApprovals, type LiveApprovals } from './live-approvals.js'
import type { Parts } from './parts.js'
import type { PolicyState } from './policy-state.js'
import { connectRedisBackend, type RedisBackend } from './redis-backend.js'
import { reportPolicyProblems } from './startup-checks.js'
import { formatAuthority } from '../net/host.js'

/** How long start-up waits for the first rate-limit sync with Redis before listening anyway. */
const FIRST_SYNC_WAIT_MS = 3000

/** What start-up makes that the rest of the instance reads later (shutdown, decisions). */
export interface Started {
  redis: RedisBackend | null
  approvals: LiveApprovals | null
  admin: Server | null
}

export interface ListeningAddresses {
  readonly proxy: AddressInfo
  readonly admin: AddressInfo
}

/**
 * Start-up, in order: the CA (made on first start) and interception; the policy's problems said once;
 * Redis (telemetry, shared limits, approvals) or the approvals file; the live approval index; the admin
 * token and API; the first rate-limit sync; then both listeners. Half started is not started: if either
 * listener fails, everything is closed (`close`) and the error thrown.
 */
export async function startInstance(
  parts: Parts,
  policy: PolicyState,
  proxyServer: Server,
  started: Started,
  env: NodeJS.ProcessEnv,
  close: () => Promise<void>,
): Promise<ListeningAddresses> {
  const { log, tracker } = parts
  const cfg = policy.current()
  if (await ensureCa(cfg.tls.caCert, cfg.tls.caKey))
    log.info(
      { code: 'PC_CA_CREATED', cert: cfg.tls.caCert },
      'interception CA generated; install its certificate in sandboxes (portcullis ca show)',
    )
  const ca = await loadCa(cfg.tls.caCert, cfg.tls.caKey, (w) => log.warn({ code: w.code }, w.message))
  parts.setInterceptor(createInterceptor(parts.deps, createLeafCertCache(ca)))
  reportPolicyProblems(cfg, env, log)
  const { url, stream, maxlen } = cfg.telemetry.redis
  if (url !== null) {
    const redisLog = log.child({ subsystem: 'redis' })
    const journals = {
      revokedApprovals: await openJournal(
        () => createRevokedApprovalsFile(revokedApprovalsFileFor(cfg.approvals.file)),
        'PC_APPROVALS_REVOCATIONS_FILE',
        redisLog,
      ),
      sandboxRevocations: await openJournal(
        () => createFileRevocationStore(revocationsFileFor(cfg.approvals.file)),
        'PC_SANDBOX_REVOCATIONS_FILE',
        redisLog,
      ),
    }
    started.redis = connectRedisBackend({
      url,
      stream,
      maxlen,
      log: redisLog,
      journals,
      bus: parts.bus,
      limiter: parts.limiter,
      // A sandbox counts under `<agent>+<id>` with its template's limits.
      rpmOf: (agent) => policy.current().policy.agents.get(templateOf(agent))?.limits.requestsPerMinute ?? null,
    })
    parts.metrics.setSources(started.redis.metrics)
  }
  const redis = started.redis
  const store = redis?.store ?? (await createFileApprovalStore(cfg.approvals.file))
  // Sandbox revocations live next to the approvals: the same Redis, or a file beside approvals.file;
  // with Redis, that file is kept too (each instance's journal), so moving between the two loses none.
  const sandboxStore = redis?.sandboxStore ?? (await createFileRevocationStore(revocationsFileFor(cfg.approvals.file)))
  parts.sandboxes.attach(sandboxStore)
  // Connections opened under an approval that is revoked or lapses close, as a reload closes what it disallows.
  const approvals = createLiveApprovals(store, (index) => {
    if (tracker.size > 0) closeDisallowed(tracker, policy.current(), index, Date.now())
  })
  started.approvals = approvals
  const routes = adminRoutes({
    parts,
    policy,
    proxyServer,
    redis,
    store,
    sandboxStore,
    findDecision: createDecisionLookup(parts.ring, () => redis?.lookup ?? null, log),
    approvals: approvals.index,
    env,
  })
  const admin = createAdminServer(routes, await loadStartToken(env, cfg.tls.caKey, log), (err) =>
    log.error({ code: 'PC_ERR_INTERNAL', err }, 'admin handler failed'),
  )
  started.admin = admin
  // With shared limits, take traffic once this instance knows what the others have admitted (its first
  // sync), so it does not start on local limits alone; if Redis does not answer soon, it says so.
  if (redis && !(await redis.sync.firstSync(FIRST_SYNC_WAIT_MS)))
    log.warn(
      { code: 'PC_LIMITS_NOT_SYNCED' },
      'no rate-limit sync with Redis yet; starting with local limits until it answers',
    )
  let addresses: ListeningAddresses
  try {
    addresses = {
      proxy: await listenOn(proxyServer, cfg.listen.host, cfg.listen.port, 'proxy'),
      admin: await listenOn(admin, cfg.admin.host, cfg.admin.port, 'admin'),
    }
  } catch (err) {
    await close()
    throw err
  }
  parts.watchAcceptErrors(admin)
  const { proxy, admin: a } = addresses
  log.info(
    {
      code: 'PC_STARTED',
      proxy: formatAuthority(proxy.address, proxy.port),
      admin: formatAuthority(a.address, a.port),
      max_connections: proxyServer.maxConnections,
      generation: policy.generation(),
    },
    'portcullis listening',
  )
  return addresses
}

/**
 * With Redis, each revocations file is a journal: one that cannot be read (a stale, corrupt or
 * unreadable file) does not stop the instance from starting, since Redis holds what every instance shares.
 */
async function openJournal<T extends KeyedEntry>(
  open: () => Promise<KeyedStore<T>>,
  code: Code,
  log: Logger,
): Promise<KeyedStore<T> | undefined> {
  try {
    return await open()
  } catch (err) {
    log.warn({ code, err }, 'a revocations file cannot be read; the revocations are kept in Redis only')
    return undefined
  }
}
