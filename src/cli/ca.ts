import { X509Certificate } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { rootCertificates } from 'node:tls'
import { parseArgs } from 'node:util'
import { loadConfig, resolveConfigPath } from '../config/load.js'
import { ensureCa, loadCa } from '../tls/ca.js'
import { EXIT_DENIED, EXIT_OK, EXIT_USAGE, type CliVerb } from './io.js'

const USAGE = 'usage: portcullis ca init|show|path|bundle [--out F] [--config F]\n'

/**
 * Where distributions keep the system's trusted roots (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE);
 * Node's built-in Mozilla roots when none is there.
 */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
]

async function systemRoots(): Promise<{ pem: string; from: string }> {
  for (const file of SYSTEM_BUNDLES) {
    try {
      return { pem: await readFile(file, 'utf8'), from: file }
    } catch {
      // not on this system
    }
  }
  return { pem: rootCertificates.join('\n'), from: "Node's built-in roots" }
}

/**
 * How to trust the CA, tool by tool. Tools that take one CA file use it instead of the system roots,
 * so they get the bundle (`ca bundle`: the roots plus this CA); only NODE_EXTRA_CA_CERTS and the
 * system store add the CA alone.
 */
function installHints(certFile: string, bundleFile: string): string {
  return `Trust it in a sandbox (${bundleFile}: the system roots plus this CA, from \`portcullis ca bundle\`):
  curl:        CURL_CA_BUNDLE=${bundleFile}   (or curl --cacert ${bundleFile} …)
  git:         GIT_SSL_CAINFO=${bundleFile}   (or git config --global http.sslCAInfo ${bundleFile})
  Node.js:     NODE_EXTRA_CA_CERTS=${certFile}
  npm:         NODE_EXTRA_CA_CERTS as above, or npm config set cafile ${bundleFile}
  pip:         PIP_CERT=${bundleFile}   (or REQUESTS_CA_BUNDLE=${bundleFile})
  Go, Python urllib, OpenSSL tools: SSL_CERT_FILE=${bundleFile}
  Debian:      cp ${certFile} /usr/local/share/ca-certificates/portcullis.crt && update-ca-certificates
`
}

/** `ca init` creates the CA if absent; `ca show` prints the PEM, fingerprint and install hints; `ca path` prints the file. */
export const run: CliVerb = async (args, io) => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { config: { type: 'string' }, out: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const sub = positionals[0]
  if (sub !== 'init' && sub !== 'show' && sub !== 'path' && sub !== 'bundle') {
    io.stderr(USAGE)
    return EXIT_USAGE
  }
  const config = await loadConfig(resolveConfigPath(values.config, io.env), io.env)
  const certFile = resolve(config.tls.caCert)
  if (values.out !== undefined && sub !== 'bundle') {
    io.stderr(`portcullis ca ${sub}: --out is for \`ca bundle\` (the CA's own path is tls.ca_cert)\n${USAGE}`)
    return EXIT_USAGE
  }
  if (sub === 'path') {
    io.stdout(`${certFile}\n`)
    return EXIT_OK
  }
  // Only `init` (and `start`) make a CA: `show` and `bundle` on a machine without one say so instead of minting one.
  if (sub === 'init') {
    const created = await ensureCa(config.tls.caCert, config.tls.caKey)
    const ca = await loadCa(config.tls.caCert, config.tls.caKey)
    io.stdout(
      `${created ? 'created' : 'exists'}: ${certFile} (key ${resolve(config.tls.caKey)}, mode 0600)\nSHA-256 fingerprint: ${ca.fingerprint256}\n`,
    )
    return EXIT_OK
  }
  if (!existsSync(config.tls.caCert)) {
    io.stderr(
      `portcullis ca ${sub}: no CA at ${certFile} yet; \`portcullis ca init\` (or the first \`portcullis start\`) creates it\n`,
    )
    return EXIT_DENIED
  }
  const defaultBundle = resolve(join(dirname(config.tls.caCert), 'ca-bundle.pem'))
  // Only the certificate: showing or bundling it needs no access to the key.
  const pem = await readFile(config.tls.caCert, 'utf8')
  const fingerprint = new X509Certificate(pem).fingerprint256
  if (sub === 'bundle') {
    // Tools that take one CA file (npm cafile, pip --cert, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, GIT_SSL_CAINFO)
    // replace the system roots with it: give them the roots and the Portcullis CA together.
    const out = resolve(values.out ?? defaultBundle)
    const roots = await systemRoots()
    try {
      await writeFile(out, `${roots.pem.trimEnd()}\n# Portcullis CA (SHA-256 ${fingerprint})\n${pem.trimEnd()}\n`)
    } catch (err) {
      io.stderr(`portcullis ca bundle: cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`)
      return EXIT_USAGE
    }
    io.stdout(`${out}\n`)
    io.stderr(`portcullis ca bundle: ${roots.from} plus the Portcullis CA (${fingerprint})\n`)
    return EXIT_OK
  }
  io.stdout(pem)
  io.stdout(
    `# file: ${certFile}\n# SHA-256 fingerprint: ${fingerprint}\n${installHints(certFile, defaultBundle).trimEnd().replace(/^/gm, '# ')}\n`,
  )
  return EXIT_OK
}
