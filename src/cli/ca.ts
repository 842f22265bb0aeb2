import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { ensureCa, loadCa } from '../tls/ca.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'

const USAGE = 'usage: portcullis ca init|show|path [--config F]\n'

function installHints(certFile: string): string {
  return `Trust it in a sandbox:
  curl:        curl --cacert ${certFile} …   (or CURL_CA_BUNDLE=${certFile})
  git:         git config --global http.sslCAInfo ${certFile}   (or GIT_SSL_CAINFO=${certFile})
  Node.js:     NODE_EXTRA_CA_CERTS=${certFile}
  npm:         npm config set cafile ${certFile}
  pip:         pip --cert ${certFile} …   (or PIP_CERT / REQUESTS_CA_BUNDLE=${certFile})
  Debian:      cp ${certFile} /usr/local/share/ca-certificates/portcullis.crt && update-ca-certificates
`
}

/** `ca init` creates the CA if absent; `ca show` prints the PEM, fingerprint and install hints; `ca path` prints the file. */
export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { config: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const sub = positionals[0]
  if (sub !== 'init' && sub !== 'show' && sub !== 'path') {
    io.stderr(USAGE)
    return EXIT_USAGE
  }
  const config = await loadConfig(resolveConfigPath(values.config, io.env), io.env)
  const certFile = resolve(config.tls.caCert)
  if (sub === 'path') {
    io.stdout(`${certFile}\n`)
    return EXIT_OK
  }
  // Only `init` (and `start`) make a CA: `show` on a machine without one says so instead of minting one.
  const created = sub === 'init' ? await ensureCa(config.tls.caCert, config.tls.caKey) : false
  if (sub === 'show' && !existsSync(config.tls.caCert)) {
    io.stderr(
      `portcullis ca show: no CA at ${certFile} yet; \`portcullis ca init\` (or the first \`portcullis start\`) creates it\n`,
    )
    return EXIT_DENIED
  }
  const ca = await loadCa(config.tls.caCert, config.tls.caKey)
  if (sub === 'init') {
    io.stdout(
      `${created ? 'created' : 'exists'}: ${certFile} (key ${resolve(config.tls.caKey)}, mode 0600)\nSHA-256 fingerprint: ${ca.fingerprint256}\n`,
    )
    return EXIT_OK
  }
  io.stdout(`${await readFile(config.tls.caCert, 'utf8')}`)
  io.stdout(
    `# file: ${certFile}\n# SHA-256 fingerprint: ${ca.fingerprint256}\n${installHints(certFile).trimEnd().replace(/^/gm, '# ')}\n`,
  )
  return EXIT_OK
}
