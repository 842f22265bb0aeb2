import t from 'tap'
import { addProxyFields, endToEnd } from '../../../src/proxy/forward.js'

const names = (flat: readonly string[]): string[] => flat.filter((_, i) => i % 2 === 0)

t.test('endToEnd drops hop-by-hop fields and what Connection names, never the framing', async (t) => {
  const cases: [string, string[], string[]][] = [
    ['keep-alive alone', ['Connection', 'Keep-Alive', 'Keep-Alive', 'timeout=5', 'X-A', '1'], ['X-A']],
    ['close alone', ['connection', 'close', 'X-A', '1'], ['X-A']],
    ['a name besides keep-alive', ['Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'X-A', '1'], ['X-A']],
    [
      'a name in a second Connection field',
      ['Connection', 'close', 'Connection', 'X-B', 'X-B', 'b', 'X-A', '1'],
      ['X-A'],
    ],
    [
      'content-length and host cannot be removed',
      ['Connection', 'content-length, host', 'Content-Length', '3', 'Host', 'h'],
      ['Content-Length', 'Host'],
    ],
    ['no Connection field', ['Transfer-Encoding', 'chunked', 'TE', 'trailers', 'Upgrade', 'x', 'X-A', '1'], ['X-A']],
  ]
  for (const [what, raw, kept] of cases) t.same(names(endToEnd(raw)), kept, what)
  t.same(
    names(endToEnd(['Via', '1.0 a', 'Host', 'h', 'X-A', '1'], new Set(['via', 'host']))),
    ['X-A'],
    'and what the caller drops',
  )
})

t.test('addProxyFields: Host without the default port, IPv6 in brackets, Via appended', async (t) => {
  const fields = (host: string, port: number, tls: boolean, via?: string): string[] => {
    const h: string[] = []
    addProxyFields(h, { address: '127.0.0.1', port, host, tls, requestTarget: '/' }, via)
    return h
  }
  t.same(fields('example.com', 80, false), ['host', 'example.com', 'via', '1.1 portcullis'])
  t.same(fields('example.com', 443, true), ['host', 'example.com', 'via', '1.1 portcullis'])
  t.same(fields('example.com', 8080, false), ['host', 'example.com:8080', 'via', '1.1 portcullis'])
  t.same(fields('example.com', 443, false), ['host', 'example.com:443', 'via', '1.1 portcullis'])
  t.same(fields('::1', 80, false), ['host', '[::1]', 'via', '1.1 portcullis'])
  t.same(fields('::1', 8443, true), ['host', '[::1]:8443', 'via', '1.1 portcullis'])
  t.same(fields('example.com', 80, false, '1.0 squid'), ['host', 'example.com', 'via', '1.0 squid, 1.1 portcullis'])
})
