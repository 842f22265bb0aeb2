import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { deflateSync } from 'node:zlib'
import { gitEnv } from '../../helpers/git-server.js'
import type { ObjectFormat } from '../../../src/git/object-format.js'

/**
 * Real git repositories and packs made at test time. Everything is local
 * (no remote is ever contacted); git runs with no system or global config.
 */

export interface PackEntry {
  readonly oid: string
  readonly type: string
  readonly size: number
  readonly packedSize: number
  readonly offset: number
  readonly depth: number
  readonly base: string | null
}

export interface Repo {
  readonly dir: string
  readonly env: NodeJS.ProcessEnv
  readonly format: ObjectFormat
  git(args: readonly string[], input?: Buffer | string): string
  gitBuffer(args: readonly string[], input?: Buffer | string): Buffer
  /** Write files, commit them all, return the new commit id. */
  commit(message: string, files: Record<string, string | Buffer>): string
  /** `git pack-objects --revs --stdout` over the given rev lines (e.g. ['HEAD', '^HEAD~2']). */
  pack(revs: readonly string[], opts?: { thin?: boolean; refDelta?: boolean }): Buffer
  /** Index the pack and list its entries as `git verify-pack -v` sees them. */
  entries(pack: Buffer): PackEntry[]
}

let packSeq = 0

export function makeRepo(dir: string, format: ObjectFormat = 'sha1', bare = false): Repo {
  mkdirSync(dir, { recursive: true })
  const env = gitEnv(dir, { GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z' })
  const gitBuffer = (args: readonly string[], input?: Buffer | string): Buffer =>
    execFileSync('git', args, {
      cwd: dir,
      env,
      input,
      timeout: 30_000,
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
  const git = (args: readonly string[], input?: Buffer | string): string =>
    gitBuffer(args, input).toString('utf8').trim()
  git(['init', '-q', '-b', 'main', `--object-format=${format}`, ...(bare ? ['--bare'] : []), '.'])
  let tick = 0
  return {
    dir,
    env,
    format,
    git,
    gitBuffer,
    commit(message, files) {
      for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
      git(['add', '-A'])
      // Distinct, increasing dates keep commit ids stable and ordering obvious.
      tick++
      const date = `2024-01-01T00:${String(Math.floor(tick / 60)).padStart(2, '0')}:${String(tick % 60).padStart(2, '0')}Z`
      execFileSync('git', ['commit', '-q', '--allow-empty', '-F', '-'], {
        cwd: dir,
        env: { ...env, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
        input: message,
        timeout: 30_000,
      })
      return git(['rev-parse', 'HEAD'])
    },
    pack(revs, opts = {}) {
      const args = ['pack-objects', '--revs', '--stdout', '-q']
      if (opts.thin) args.push('--thin')
      if (!opts.refDelta) args.push('--delta-base-offset')
      return gitBuffer(args, revs.join('\n') + '\n')
    },
    entries(pack) {
      const base = join(dir, `.fixture-${process.pid}-${packSeq++}`)
      writeFileSync(`${base}.pack`, pack)
      const args = ['index-pack', '-o', `${base}.idx`]
      if (format === 'sha256') args.push('--object-format=sha256')
      git([...args, `${base}.pack`])
      const out = git(['verify-pack', '-v', `${base}.idx`])
      return out
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length >= 5 && /^[0-9a-f]{40,64}$/.test(f[0]!))
        .map((f) => ({
          oid: f[0]!,
          type: f[1]!,
          size: Number(f[2]),
          packedSize: Number(f[3]),
          offset: Number(f[4]),
          depth: f[5] === undefined ? 0 : Number(f[5]),
          base: f[6] ?? null,
        }))
    },
  }
}

/** A new pack made of some raw entries of `pack` (in the order given), with a fresh header and checksum. */
export function rewritePack(pack: Buffer, entries: readonly PackEntry[], format: ObjectFormat): Buffer {
  const header = Buffer.alloc(12)
  pack.copy(header, 0, 0, 8)
  header.writeUInt32BE(entries.length, 8)
  const body = Buffer.concat([header, ...entries.map((e) => pack.subarray(e.offset, e.offset + e.packedSize))])
  return Buffer.concat([body, createHash(format).update(body).digest()])
}

/** Replace the trailing checksum so that a mutated pack still passes the checksum test. */
export function fixTrailer(pack: Buffer, format: ObjectFormat): Buffer {
  const len = format === 'sha1' ? 20 : 32
  if (pack.length < len) return pack
  const body = pack.subarray(0, pack.length - len)
  return Buffer.concat([body, createHash(format).update(body).digest()])
}

/** Text that deltifies well: many lines shared between commits. */
export function longText(seed: number, lines = 120): string {
  const out: string[] = []
  for (let i = 0; i < lines; i++) out.push(`line ${i} of a long and repetitive body, shared by every version`)
  out.push(`version ${seed}`)
  return out.join('\n') + '\n'
}

/** One object of a hand-built pack. */
export type CraftedObject =
  | { readonly type: 1 | 2 | 3 | 4; readonly body: Buffer; readonly declaredSize?: number }
  | { readonly ofsDeltaOf: number; readonly delta: Buffer }
  | { readonly refDeltaOf: string; readonly delta: Buffer }

/** Build a pack by hand (version 2), for shapes git itself never writes. `ofsDeltaOf` is an earlier index. */
export function craftPack(format: ObjectFormat, objects: readonly CraftedObject[]): Buffer {
  const parts: Buffer[] = []
  const offsets: number[] = []
  let pos = 12
  for (const o of objects) {
    offsets.push(pos)
    let head: Buffer
    let data: Buffer
    if ('type' in o) {
      head = typeAndSize(o.type, o.declaredSize ?? o.body.length)
      data = o.body
    } else if ('ofsDeltaOf' in o) {
      head = Buffer.concat([typeAndSize(6, o.delta.length), ofsVarint(pos - offsets[o.ofsDeltaOf]!)])
      data = o.delta
    } else {
      head = Buffer.concat([typeAndSize(7, o.delta.length), Buffer.from(o.refDeltaOf, 'hex')])
      data = o.delta
    }
    const entry = Buffer.concat([head, deflateSync(data)])
    parts.push(entry)
    pos += entry.length
  }
  const header = Buffer.alloc(12)
  header.write('PACK', 0, 'latin1')
  header.writeUInt32BE(2, 4)
  header.writeUInt32BE(objects.length, 8)
  const body = Buffer.concat([header, ...parts])
  return Buffer.concat([body, createHash(format).update(body).digest()])
}

/** A delta that inserts `target` whole (no copies), against a base of `baseSize` bytes. */
export function insertDelta(baseSize: number, target: Buffer): Buffer {
  const parts = [sizeVarint(baseSize), sizeVarint(target.length)]
  for (let off = 0; off < target.length; off += 127) {
    const piece = target.subarray(off, off + 127)
    parts.push(Buffer.from([piece.length]), piece)
  }
  return Buffer.concat(parts)
}

export function sizeVarint(n: number): Buffer {
  const out: number[] = []
  let v = n
  do {
    let b = v % 128
    v = Math.floor(v / 128)
    if (v > 0) b |= 0x80
    out.push(b)
  } while (v > 0)
  return Buffer.from(out)
}

function typeAndSize(type: number, size: number): Buffer {
  const out: number[] = []
  let b = (type << 4) | (size & 15)
  let v = Math.floor(size / 16)
  while (v > 0) {
    out.push(b | 0x80)
    b = v % 128
    v = Math.floor(v / 128)
  }
  out.push(b)
  return Buffer.from(out)
}

function ofsVarint(rel: number): Buffer {
  const out = [rel & 0x7f]
  let v = Math.floor(rel / 128)
  while (v > 0) {
    v -= 1
    out.unshift(0x80 | (v & 0x7f))
    v = Math.floor(v / 128)
  }
  return Buffer.from(out)
}

/** A commit body with the given parents (ids in the format's length). */
export function commitBody(format: ObjectFormat, parents: readonly string[], message: string, extra = ''): Buffer {
  const tree = format === 'sha1' ? '4b825dc642cb6eb9a060e54bf8d69288fbee4904' : 'a'.repeat(64)
  const lines = [
    `tree ${tree}`,
    ...parents.map((p) => `parent ${p}`),
    'author A <a@x> 0 +0000',
    'committer A <a@x> 0 +0000',
  ]
  return Buffer.from(`${lines.join('\n')}\n${extra}\n${message}\n`)
}
