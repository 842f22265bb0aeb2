/**
 * Leaf-certificate cost, in process: createLeafCertCache().get(host) for a
 * host never seen (mint: forge TBS + native RSA signature + SecureContext) vs
 * a cached host (LRU hit). Bounded: at most 400 mints / 3 s and 200k hits / 1 s.
 *
 *   node --import tsx bench/leaf-mint.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createCaMaterial, loadCa } from '../src/tls/ca.js'
import { createLeafCertCache } from '../src/tls/leaf-certs.js'

export interface MintResult {
  readonly coldMints: number
  readonly coldMeanUs: number
  readonly coldP50Us: number
  readonly coldP99Us: number
  readonly cachedHits: number
  readonly cachedMeanUs: number
}

export async function benchLeafMint(
  maxMints = 400,
  mintMs = 3000,
  maxHits = 200_000,
  hitMs = 1000,
): Promise<MintResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pc-bench-ca-'))
  try {
    const { certPem, keyPem } = createCaMaterial('Portcullis bench CA')
    writeFileSync(join(dir, 'ca.pem'), certPem)
    writeFileSync(join(dir, 'ca-key.pem'), keyPem, { mode: 0o600 })
    const ca = await loadCa(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'))
    const cache = createLeafCertCache(ca, { capacity: maxMints + 10 })
    // Warm-up: JIT forge's ASN.1 paths once.
    for (let i = 0; i < 10; i++) cache.get(`warm${i}.mint.test`)
    const times: number[] = []
    const end = performance.now() + mintMs
    for (let i = 0; i < maxMints && performance.now() < end; i++) {
      const t = performance.now()
      cache.get(`h${i}.mint.test`)
      times.push((performance.now() - t) * 1000)
    }
    times.sort((a, b) => a - b)
    const hitEnd = performance.now() + hitMs
    const h0 = performance.now()
    let hits = 0
    while (hits < maxHits && (hits % 1024 !== 0 || performance.now() < hitEnd)) {
      cache.get('h0.mint.test')
      hits++
    }
    const hitUs = ((performance.now() - h0) * 1000) / hits
    const mean = times.reduce((a, b) => a + b, 0) / times.length
    return {
      coldMints: times.length,
      coldMeanUs: mean,
      coldP50Us: times[Math.floor(times.length / 2)] ?? NaN,
      coldP99Us: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] ?? NaN,
      cachedHits: hits,
      cachedMeanUs: hitUs,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log('$ node --import tsx bench/leaf-mint.ts')
  const r = await benchLeafMint()
  console.log(
    `cold mint: ${r.coldMints} hosts, mean ${r.coldMeanUs.toFixed(0)} µs, p50 ${r.coldP50Us.toFixed(0)} µs, p99 ${r.coldP99Us.toFixed(0)} µs (${(1e6 / r.coldMeanUs).toFixed(0)}/s)`,
  )
  console.log(`cached:    ${r.cachedHits} gets, mean ${r.cachedMeanUs.toFixed(2)} µs`)
}
