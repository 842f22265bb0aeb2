/**
 * Built-in presets: named bundles of host rules (SPEC §3). Package registries
 * are read-only here (GET/HEAD everywhere): publishing is a separate,
 * deliberate rule. Because these rules carry `methods`, a CONNECT to these
 * hosts is intercepted when tls.intercept allows it.
 * A user preset of the same name (top-level `presets:`) replaces a built-in one.
 */
import type { RawHostRule } from './schema.js'

const READ_ONLY = ['GET', 'HEAD']

function readOnly(...hosts: string[]): readonly RawHostRule[] {
  return Object.freeze(hosts.map((host) => Object.freeze({ host, methods: READ_ONLY })))
}

/**
 * What `npm install` and `npm audit` POST: the advisory lookups (package names and versions, no
 * code). Without them every install leaves a denial and `npm audit` fails.
 */
const NPM_AUDIT: RawHostRule = Object.freeze({
  host: 'registry.npmjs.org',
  methods: ['POST'],
  paths: ['/-/npm/v1/security/advisories/bulk', '/-/npm/v1/security/audits/quick', '/-/npm/v1/security/audits'],
})

export const BUILTIN_PRESETS: ReadonlyMap<string, readonly RawHostRule[]> = new Map([
  ['npm', Object.freeze([...readOnly('registry.npmjs.org'), NPM_AUDIT])],
  ['pypi', readOnly('pypi.org', 'files.pythonhosted.org')],
  ['crates', readOnly('crates.io', 'static.crates.io', 'index.crates.io')],
  ['go', readOnly('proxy.golang.org', 'sum.golang.org')],
  ['maven', readOnly('repo.maven.apache.org', 'repo1.maven.org')],
  ['rubygems', readOnly('rubygems.org', 'index.rubygems.org')],
  ['debian', readOnly('deb.debian.org', 'security.debian.org')],
  ['docker-hub', readOnly('registry-1.docker.io', 'auth.docker.io', 'production.cloudflare.docker.com')],
  ['huggingface', readOnly('huggingface.co', 'cdn-lfs.huggingface.co', 'cas-bridge.xethub.hf.co')],
])
