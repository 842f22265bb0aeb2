import t from 'tap'
import {
  classifyAddress,
  isAddressAllowed,
  isBlockedAddressClass,
  type AddressClass,
} from '../../../src/net/address-class.js'
import { parseCidr, type Cidr } from '../../../src/net/host.js'

// In the spirit of mitmproxy's test_block.py: every way to spell a private address.
const CASES: ReadonlyArray<readonly [string, AddressClass]> = [
  // IPv4 public
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['140.82.112.3', 'public'],
  ['192.175.48.1', 'public'], // AS112 anycast is globally reachable
  // loopback, in every spelling
  ['127.0.0.1', 'loopback'],
  ['127.0.0.2', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['0x7f.1', 'loopback'],
  ['2130706433', 'loopback'],
  ['017700000001', 'loopback'],
  ['127.1', 'loopback'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['[::ffff:127.0.0.1]', 'loopback'],
  ['::FFFF:7F00:1', 'loopback'],
  // RFC 1918
  ['10.0.0.1', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:c0a8:101', 'private'],
  // link-local and cloud metadata
  ['169.254.169.254', 'link_local'],
  ['169.254.0.1', 'link_local'],
  ['::ffff:169.254.169.254', 'link_local'],
  ['fe80::1', 'link_local'],
  ['febf::1', 'link_local'],
  // scope ids
  ['fe80::1%eth0', 'link_local'],
  ['fe80::1%25', 'link_local'],
  ['2606:4700::1%eth0', 'reserved'],
  // CGNAT
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.1', 'public'],
  // ULA
  ['fc00::1', 'ula'],
  ['fd12:3456:789a::1', 'ula'],
  // multicast
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['ff02::1', 'multicast'],
  // unspecified
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['0', 'unspecified'],
  ['::', 'unspecified'],
  // reserved
  ['255.255.255.255', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.51.100.1', 'reserved'],
  ['203.0.113.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['192.0.0.1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['fec0::1', 'reserved'],
  ['100::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['::2:0:0:1', 'reserved'],
  // IPv6 public
  ['2606:4700:4700::1111', 'public'],
  ['2a00:1450:4001:81c::200e', 'public'],
  // IPv4-compatible ::a.b.c.d
  ['::127.0.0.1', 'loopback'],
  ['::7f00:1', 'loopback'],
  ['::a00:1', 'private'],
  ['::8.8.8.8', 'reserved'],
  // IPv4-translated (RFC 6145)
  ['::ffff:0:7f00:1', 'loopback'],
  ['::ffff:0:808:808', 'reserved'],
  // NAT64
  ['64:ff9b::8.8.8.8', 'public'],
  ['64:ff9b::808:808', 'public'],
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'link_local'],
  ['64:ff9b::a00:1', 'private'],
  ['64:ff9b:1::a00:1', 'private'],
  ['64:ff9b:1::808:808', 'reserved'],
  // 6to4: the IPv4 sits in bits 16-47
  ['2002:7f00:1::', 'loopback'],
  ['2002:a9fe:a9fe::1', 'link_local'],
  ['2002:c0a8:101::1', 'private'],
  ['2002:808:808::1', 'reserved'],
  // Teredo: client IPv4 is bit-inverted in the last 32 bits
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback'],
  ['2001:0:4136:e378:8000:63bf:f5ff:fffe', 'private'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
  ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', 'reserved'],
  // garbage fails closed
  ['', 'reserved'],
  ['example.com', 'reserved'],
  ['1.2.3.256', 'reserved'],
  ['::ffff:1.2.3.256', 'reserved'],
]

for (const [ip, cls] of CASES) {
  t.test(`\`${ip}\` is ${cls}`, async (t) => {
    t.equal(classifyAddress(ip), cls)
  })
}

t.test('only public is not blocked', async (t) => {
  const all: AddressClass[] = [
    'public',
    'loopback',
    'private',
    'link_local',
    'cgnat',
    'ula',
    'multicast',
    'unspecified',
    'reserved',
  ]
  t.same(all.filter(isBlockedAddressClass), all.slice(1))
})

function cidrs(...texts: string[]): Cidr[] {
  return texts.map((s) => {
    const c = parseCidr(s)
    if (c === null) throw new Error(`bad fixture ${s}`)
    return c
  })
}

const ALLOWED: ReadonlyArray<readonly [string, readonly string[], boolean, string]> = [
  ['8.8.8.8', [], true, 'a public address is allowed'],
  ['127.0.0.2', [], false, 'loopback is blocked by default'],
  ['127.0.0.2', ['127.0.0.2/32'], true, 'allow_private naming the address allows it'],
  ['127.0.0.3', ['127.0.0.2/32'], false, 'allow_private does not extend to a neighbour'],
  ['0x7f.2', ['127.0.0.2'], true, 'another spelling of an allowed address is allowed'],
  ['::ffff:10.1.2.3', ['10.0.0.0/8'], true, 'a mapped address matches its IPv4 network'],
  ['10.1.2.3', ['fd00::/8'], false, 'an IPv6 network does not allow an IPv4 address'],
  ['fd00::5', ['fd00::/8'], true, 'a ULA inside an allowed IPv6 network is allowed'],
  ['64:ff9b::a00:1', ['10.0.0.0/8'], false, 'NAT64 of an allowed IPv4 is not the same address'],
  ['169.254.169.254', ['10.0.0.0/8', '172.16.0.0/12'], false, 'metadata stays blocked'],
  ['not-an-ip', ['0.0.0.0/0'], false, 'garbage is never allowed'],
]
for (const [ip, allow, expected, behaviour] of ALLOWED) {
  t.test(`isAddressAllowed: ${behaviour}`, async (t) => {
    t.equal(isAddressAllowed(ip, cidrs(...allow)), expected)
  })
}

t.test('isAddressAllowed: a verdict is remembered per allow_private list, never across lists', async (t) => {
  const narrow = cidrs('127.0.0.1/32')
  const wide = cidrs('127.0.0.0/8')
  t.equal(isAddressAllowed('127.0.0.2', narrow), false)
  t.equal(isAddressAllowed('127.0.0.2', wide), true, 'a reload that widens allow_private takes effect')
  t.equal(isAddressAllowed('127.0.0.2', narrow), false, 'and one that narrows it')
  t.equal(isAddressAllowed('127.0.0.2', cidrs()), false)
})
