import type { Socket } from 'node:net'
import type { Credential } from '../identity/authenticate.js'
import { connStateOf } from './conn-state.js'
import type { ProxyDeps } from './deps.js'
import type { InFlightRequest, TrackedConn, TunnelTracker } from './tracker.js'

/**
 * A plain-HTTP client connection as the tracker sees it: one entry per connection, carrying the facts
 * of the request whose answer is in flight, so a revocation, an expiry, a reload or the bytes sweep
 * can cut a long answer (a download, an event stream), not only refuse the next request. Between
 * requests it carries none and the sweeps pass it by (tracker.all()).
 *
 * One entry per connection, not per request: a tracker entry added and removed for every request
 * cost ~20 % of a forwarded request's CPU (bench/focus.ts d: 101 → 124 µs), a field written per
 * request nothing measurable.
 */
class PlainExchange implements TrackedConn {
  readonly via = 'request' as const
  agent = ''
  host = ''
  port = 0
  address = ''
  pinned = false
  credential: Credential = NONE
  request: InFlightRequest | undefined = undefined
  connection: { account(): void } = NOTHING_MOVES

  constructor(
    private readonly socket: Socket,
    readonly srcIp: string,
  ) {}

  close(): void {
    this.socket.destroy()
  }
}

export interface ExchangeFacts {
  readonly agent: string
  readonly host: string
  readonly port: number
  readonly address: string
  readonly pinned: boolean
  readonly credential: Credential
  readonly request: InFlightRequest
}

const NONE: Credential = Object.freeze({ kind: 'source' })
const NOTHING_MOVES = Object.freeze({ account: () => undefined })
const kExchange = Symbol('portcullis.plainExchange')
type ExchangeSocket = Socket & { [kExchange]?: PlainExchange }

/**
 * The answer to `facts` is in flight on `socket` (its bytes and close record are `connection`'s) until
 * `done` is called: tracked till then.
 */
export function carryExchange(
  tracker: TunnelTracker,
  socket: Socket,
  srcIp: string,
  facts: ExchangeFacts,
  connection: { account(): void },
): () => void {
  const s = socket as ExchangeSocket
  let x = s[kExchange]
  if (x === undefined) {
    const created = new PlainExchange(socket, srcIp)
    x = created
    s[kExchange] = created
    tracker.add(created)
    socket.once('close', () => tracker.remove(created))
  }
  const exchange: PlainExchange = x
  Object.assign(exchange, facts)
  exchange.connection = connection
  return () => {
    if (exchange.connection !== connection) return
    exchange.request = undefined
    exchange.connection = NOTHING_MOVES
  }
}

/** What a request on the proxy listener was decided on, as carryRequest needs it. */
export interface ListenerRequestFacts {
  readonly agent: string | null
  readonly host: string
  readonly port: number
  /** The checked address it goes to. */
  readonly address: string | null
  readonly method: string
  readonly path: string | null
}

/**
 * carryExchange for a request on the proxy listener (absolute-form, so `http`): its answer, or a
 * WebSocket's 101, is awaited on `socket` until the returned function is called.
 */
export function carryRequest(
  deps: Pick<ProxyDeps, 'tracker' | 'config'>,
  socket: Socket,
  facts: ListenerRequestFacts,
  credential: Credential,
  connection: { account(): void },
): () => void {
  const address = facts.address ?? ''
  return carryExchange(
    deps.tracker,
    socket,
    connStateOf(socket).srcIp,
    {
      agent: facts.agent ?? '',
      host: facts.host,
      port: facts.port,
      address,
      pinned: deps.config().upstream.resolve.get(facts.host)?.includes(address) ?? false,
      credential,
      request: { method: facts.method, path: facts.path ?? '/', scheme: 'http' },
    },
    connection,
  )
}
