import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

/**
 * Loopback stand-ins for npm and PyPI registries (packuments with publish times and real tarballs;
 * PEP 691 Simple pages with upload times and real wheels), for driving real npm and pip through the
 * proxy. Each answer is gzipped when the client accepts it, as the real registries do.
 */
export interface NpmVersion {
  readonly version: string
  readonly publishedAt: Date
}

export interface NpmPackage {
  readonly name: string
  readonly versions: readonly NpmVersion[]
  readonly distTags: Readonly<Record<string, string>>
}

export interface Built {
  readonly bytes: Buffer
  readonly sha512: string
  readonly sha1: string
  readonly sha256: string
}

async function run(cmd: string, args: readonly string[], cwd: string): Promise<void> {
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
  const err: Buffer[] = []
  child.stderr.on('data', (c: Buffer) => err.push(c))
  const [code] = (await once(child, 'close')) as [number | null]
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${Buffer.concat(err).toString()}`)
}

function digests(bytes: Buffer): Built {
  return {
    bytes,
    sha512: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
    sha1: createHash('sha1').update(bytes).digest('hex'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
  }
}

/** An npm tarball (`package/package.json`, `package/index.js`) for name@version. */
export async function buildNpmTarball(work: string, name: string, version: string): Promise<Built> {
  const dir = join(work, `${name.replace('/', '__')}-${version}`)
  mkdirSync(join(dir, 'package'), { recursive: true })
  writeFileSync(
    join(dir, 'package', 'package.json'),
    JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }),
  )
  writeFileSync(join(dir, 'package', 'index.js'), `module.exports = ${JSON.stringify(`${name}@${version}`)}\n`)
  const file = join(work, `${name.replace('/', '__')}-${version}.tgz`)
  await run('tar', ['-czf', file, '-C', dir, 'package'], work)
  return digests(readFileSync(file))
}

/** A minimal valid wheel for project==version (one module, METADATA, WHEEL, RECORD). */
export async function buildWheel(
  work: string,
  project: string,
  version: string,
): Promise<{ filename: string } & Built> {
  const dist = project.replace(/-/g, '_')
  const filename = `${dist}-${version}-py3-none-any.whl`
  const out = join(work, filename)
  const script = `
import sys, zipfile
dist, version, project, out = sys.argv[1:5]
info = f"{dist}-{version}.dist-info"
files = {
  f"{dist}/__init__.py": f"VERSION = {version!r}\\n",
  f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {project}\\nVersion: {version}\\n",
  f"{info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: portcullis-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = "".join(f"{n},,\\n" for n in files) + f"{info}/RECORD,,\\n"
with zipfile.ZipFile(out, "w") as z:
  for n, text in files.items(): z.writestr(n, text)
  z.writestr(f"{info}/RECORD", record)
`
  await run('python3', ['-c', script, dist, version, project, out], work)
  return { filename, ...digests(readFileSync(out)) }
}

/** Send `body` as JSON (or `type`), gzipped when the request accepts it. */
export function sendDocument(req: IncomingMessage, res: ServerResponse, body: string, type = 'application/json'): void {
  const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')
  const bytes = gzip ? gzipSync(body) : Buffer.from(body)
  res.writeHead(200, {
    'content-type': type,
    'content-length': String(bytes.length),
    etag: `"${createHash('sha1').update(body).digest('hex')}"`,
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
  })
  res.end(bytes)
}

/** The full packument npm reads: versions with dist, dist-tags, and publish times. */
export function packument(pkg: NpmPackage, tarballs: ReadonlyMap<string, Built>, base: string): object {
  const short = pkg.name.split('/').pop() as string
  const versions: Record<string, object> = {}
  const time: Record<string, string> = {}
  for (const v of pkg.versions) {
    const built = tarballs.get(`${pkg.name}@${v.version}`)
    versions[v.version] = {
      name: pkg.name,
      version: v.version,
      main: 'index.js',
      license: 'MIT',
      dist: {
        tarball: `${base}/${pkg.name}/-/${short}-${v.version}.tgz`,
        shasum: built?.sha1,
        integrity: built?.sha512,
      },
    }
    time[v.version] = v.publishedAt.toISOString()
  }
  const times = pkg.versions.map((v) => v.publishedAt.getTime())
  time.created = new Date(Math.min(...times)).toISOString()
  time.modified = new Date(Math.max(...times)).toISOString()
  return { name: pkg.name, 'dist-tags': pkg.distTags, versions, time }
}

export const DAY_MS = 24 * 3600_000
export const daysAgo = (n: number): Date => new Date(Date.now() - n * DAY_MS)
