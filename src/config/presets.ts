import type { RawHostRule } from './schema.js'

const READ = ['GET', 'HEAD']

/**
 * Built-in presets as data: the hosts each package ecosystem needs to install
 * (read-only: GET/HEAD). Because they name methods, HTTPS to these hosts is
 * intercepted under `tls.intercept: auto`, which is what makes a publish
 * (`PUT`) a `denied_method` rather than an opaque tunnel.
 */
export const BUILTIN_PRESETS: Readonly<Record<string, readonly RawHostRule[]>> = {
  npm: [{ host: 'registry.npmjs.org', methods: READ }],
  pypi: [
    { host: 'pypi.org', methods: READ },
    { host: 'files.pythonhosted.org', methods: READ },
  ],
  crates: [
    { host: 'crates.io', methods: READ },
    { host: 'static.crates.io', methods: READ },
    { host: 'index.crates.io', methods: READ },
  ],
  go: [
    { host: 'proxy.golang.org', methods: READ },
    { host: 'sum.golang.org', methods: READ },
  ],
  maven: [
    { host: 'repo.maven.apache.org', methods: READ },
    { host: 'repo1.maven.org', methods: READ },
  ],
  rubygems: [
    { host: 'rubygems.org', methods: READ },
    { host: 'index.rubygems.org', methods: READ },
  ],
  debian: [
    { host: 'deb.debian.org', methods: READ },
    { host: 'security.debian.org', methods: READ },
  ],
  'docker-hub': [
    { host: 'registry-1.docker.io', methods: READ },
    { host: 'auth.docker.io', methods: READ },
    { host: 'production.cloudflare.docker.com', methods: READ },
  ],
  huggingface: [
    { host: 'huggingface.co', methods: READ },
    { host: 'cdn-lfs.huggingface.co', methods: READ },
    { host: 'cas-bridge.xethub.hf.co', methods: READ },
  ],
}
