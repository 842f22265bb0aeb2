/**
 * RFC 9110 §7.6.1 hop-by-hop fields, plus the proxy's own credentials, which never travel upstream,
 * `Expect` (the proxy answers 100-continue itself, once the request is allowed), and the framing fields
 * the proxy writes itself on each hop (`transfer-encoding`; `content-length` stays when it is the body's).
 * The forwarder strips them (proxy/forward.ts); inject_headers may not name them (config/schema.ts).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // RFC 9113 §3.2.1: connection-specific, meaningful only with an h2c Upgrade (which the proxy declines).
  'http2-settings',
  'expect',
])
