/**
 * The head of a smart-HTTP push (`POST …/git-receive-pack`), read before
 * anything goes upstream (SPEC §8). PURE.
 *
 * Layout (gitprotocol-pack(5), "Reference Update Request"):
 *
 *   *PKT("shallow" SP oid)
 *   PKT(old SP new SP ref NUL capabilities)  *PKT(old SP new SP ref)   0000
 *   [ *PKT(push-option) 0000 ]      only when `push-options` was asked for and there are commands
 *   [ packfile ]                    absent when every command is a delete
 *
 * or, for a signed push, PKT("push-cert" NUL capabilities) … PKT("push-cert-end")
 * 0000 with the commands inside the certificate.
 *
 * This parser is stricter than git's receive-pack wherever git is lax in a way
 * that could make the proxy and the server read different commands: a
 * delim packet, capabilities on a later line, unsigned commands mixed with a
 * certificate, a NUL inside a certificate or an empty line are refused as `malformed` rather than guessed
 * at. A refused oddity costs a retry; a misread command would bypass policy.
 *
 * Called on a growing prefix of the body: `need_more` until the head is
 * complete, bounded by `maxHeadBytes` and `maxCommands`.
 */

import { chompLf, readPktLine, type PktLine } from './pkt-line.js'
import { isZeroOid, parseOidHex, type ObjectFormat } from './object-format.js'
import { parseRefname } from './refname.js'

export interface RefCommand {
  /** All zeros when the ref is being created. */
  readonly old: string
  /** All zeros when the ref is being deleted. */
  readonly new: string
  readonly ref: string
}

export type SideBand = 'none' | 'side-band' | 'side-band-64k'
export type ReportStatus = 'none' | 'report-status' | 'report-status-v2'

export interface ReceivePackHead {
  readonly commands: readonly RefCommand[]
  /** Capabilities as the client sent them, in order (`agent=git/2.39.5` kept whole). */
  readonly capabilities: readonly string[]
  readonly objectFormat: ObjectFormat
  readonly pushOptions: readonly string[]
  /** `shallow` lines (a push from a shallow clone). */
  readonly shallow: readonly string[]
  /** True when the commands came from a signed push certificate. */
  readonly signed: boolean
  readonly sideBand: SideBand
  readonly reportStatus: ReportStatus
  /** Offset of the packfile in the body: the length of the head. */
  readonly packOffset: number
  /** False when there are no commands or every command is a delete: no pack follows. */
  readonly expectsPack: boolean
}

export type ReceivePackHeadError =
  | 'malformed'
  | 'truncated'
  | 'head_too_large'
  | 'too_many_commands'
  | 'bad_oid'
  | 'bad_refname'
  | 'unsupported_object_format'

export type ReceivePackHeadResult =
  | { readonly kind: 'head'; readonly head: ReceivePackHead }
  | { readonly kind: 'need_more' }
  | { readonly kind: 'error'; readonly code: ReceivePackHeadError; readonly detail: string }

export interface ReceivePackHeadLimits {
  readonly maxHeadBytes: number
  readonly maxCommands: number
  readonly maxPushOptions: number
}

export const DEFAULT_RECEIVE_PACK_HEAD_LIMITS: ReceivePackHeadLimits = Object.freeze({
  maxHeadBytes: 1024 * 1024,
  maxCommands: 10_000,
  maxPushOptions: 100,
})

export interface ParseHeadOptions {
  readonly limits?: ReceivePackHeadLimits
  /** The body has ended: an incomplete head is `truncated`, not `need_more`. */
  readonly final?: boolean
}

// gpg-interface.c: a line starting with one of these begins the signature (the last such line counts).
const SIGNATURE_STARTS = [
  '-----BEGIN PGP SIGNATURE-----',
  '-----BEGIN PGP MESSAGE-----',
  '-----BEGIN SIGNED MESSAGE-----',
  '-----BEGIN SSH SIGNATURE-----',
]

type Step<T> =
  | { readonly ok: true; readonly value: T; readonly next: number }
  | { readonly ok: false; readonly result: ReceivePackHeadResult }

interface Reader {
  readonly buf: Buffer
  readonly limits: ReceivePackHeadLimits
  readonly final: boolean
}

export function parseReceivePackHead(buf: Buffer, options: ParseHeadOptions = {}): ReceivePackHeadResult {
  const reader: Reader = {
    buf,
    limits: options.limits ?? DEFAULT_RECEIVE_PACK_HEAD_LIMITS,
    final: options.final ?? false,
  }
  try {
    return parseHead(reader)
  } catch {
    // Unreachable by design: every read is bounds-checked. Kept so "never throws" holds.
    return fail('malformed', 'internal')
  }
}

/** The shallow lines and the first command line (or the certificate's first line). */
function readLead(
  r: Reader,
): { readonly shallowRaw: Buffer[]; readonly first: Buffer; readonly pos: number } | ReceivePackHeadResult {
  const shallowRaw: Buffer[] = []
  let pos = 0
  for (;;) {
    const p = nextPacket(r, pos)
    if (!p.ok) return p.result
    pos = p.next
    if (p.value.kind === 'flush') return finishEmpty(shallowRaw, pos)
    if (p.value.kind !== 'data') return fail('malformed', 'unexpected_special_packet')
    const line = chompLf(p.value.payload)
    if (!startsWith(line, 'shallow ')) return { shallowRaw, first: line, pos }
    shallowRaw.push(line.subarray(8))
  }
}

function parseHead(r: Reader): ReceivePackHeadResult {
  const lead = readLead(r)
  if ('kind' in lead) return lead
  const { shallowRaw, first, pos } = lead
  const nul = first.indexOf(0)
  const capabilities = nul < 0 ? [] : splitCapabilities(first.subarray(nul + 1))
  if (capabilities === null) return fail('malformed', 'bad_capability')
  const format = objectFormatOf(capabilities)
  if (typeof format !== 'string') return format
  const shallow = parseOids(shallowRaw, format)
  if (shallow === null) return fail('bad_oid', 'shallow')
  const firstLine = nul < 0 ? first : first.subarray(0, nul)
  const cmds =
    firstLine.toString('latin1') === 'push-cert'
      ? readCertCommands(r, pos, format)
      : readPlainCommands(r, pos, firstLine, format)
  if (!cmds.ok) return cmds.result
  const ctx = { capabilities, format, shallow, signed: firstLine.toString('latin1') === 'push-cert' }
  return finishHead(r, cmds.value, cmds.next, ctx)
}

/** `0000` alone (git's probe before a chunked upload) or shallow lines only: no commands, nothing follows. */
function finishEmpty(shallowRaw: Buffer[], pos: number): ReceivePackHeadResult {
  const shallow = parseOids(shallowRaw, 'sha1') ?? parseOids(shallowRaw, 'sha256')
  if (shallow === null) return fail('bad_oid', 'shallow')
  return head({
    commands: [],
    capabilities: [],
    objectFormat: 'sha1',
    pushOptions: [],
    shallow,
    signed: false,
    sideBand: 'none',
    reportStatus: 'none',
    packOffset: pos,
    expectsPack: false,
  })
}

function readPlainCommands(r: Reader, start: number, firstLine: Buffer, format: ObjectFormat): Step<RefCommand[]> {
  const commands: RefCommand[] = []
  let line: Buffer = firstLine
  let pos = start
  for (;;) {
    const cmd = parseCommand(line, format)
    if ('code' in cmd) return { ok: false, result: fail(cmd.code, cmd.detail) }
    commands.push(cmd)
    if (commands.length > r.limits.maxCommands) return { ok: false, result: fail('too_many_commands', 'commands') }
    const p = nextPacket(r, pos)
    if (!p.ok) return p
    pos = p.next
    if (p.value.kind === 'flush') return { ok: true, value: commands, next: pos }
    if (p.value.kind !== 'data') return { ok: false, result: fail('malformed', 'unexpected_special_packet') }
    line = chompLf(p.value.payload)
    // git would parse capabilities again from any line; only the first may carry them here.
    if (line.includes(0)) return { ok: false, result: fail('malformed', 'capabilities_after_first_command') }
    if (startsWith(line, 'shallow ')) return { ok: false, result: fail('malformed', 'shallow_after_command') }
  }
}

/** The certificate's lines, then `push-cert-end`, then a flush; commands are in the certificate body. */
function readCertCommands(r: Reader, start: number, format: ObjectFormat): Step<RefCommand[]> {
  const lines: Buffer[] = []
  let pos = start
  for (;;) {
    const p = nextPacket(r, pos)
    if (!p.ok) return p
    pos = p.next
    if (p.value.kind !== 'data') return { ok: false, result: fail('malformed', 'unterminated_push_cert') }
    // git keeps a certificate line only up to its first NUL (strbuf_addstr): a NUL lets the two
    // readings end the header, the commands or the certificate at different lines, so hidden
    // commands would reach the server unchecked.
    if (p.value.payload.includes(0)) return { ok: false, result: fail('malformed', 'nul_in_push_cert') }
    // Certificate lines keep their LF (git reads them unchomped).
    if (p.value.payload.toString('latin1') === 'push-cert-end\n') break
    lines.push(p.value.payload)
  }
  const end = nextPacket(r, pos)
  if (!end.ok) return end
  if (end.value.kind !== 'flush') return { ok: false, result: fail('malformed', 'commands_after_push_cert') }
  const cert = Buffer.concat(lines)
  const bodyStart = cert.indexOf('\n\n')
  if (bodyStart < 0) return { ok: false, result: fail('malformed', 'push_cert_without_body') }
  const bodyEnd = signatureStart(cert)
  const commands: RefCommand[] = []
  for (let at = bodyStart + 2; at < bodyEnd;) {
    const eol = cert.indexOf(0x0a, at)
    const stop = eol < 0 || eol > bodyEnd ? bodyEnd : eol
    const cmd = parseCommand(cert.subarray(at, stop), format)
    if ('code' in cmd) return { ok: false, result: fail(cmd.code, cmd.detail) }
    commands.push(cmd)
    if (commands.length > r.limits.maxCommands) return { ok: false, result: fail('too_many_commands', 'commands') }
    at = stop + 1
  }
  if (commands.length === 0) return { ok: false, result: fail('malformed', 'push_cert_without_commands') }
  return { ok: true, value: commands, next: end.next }
}

/** Offset of the last line that starts a signature, as git's parse_signed_buffer finds it; else the length. */
function signatureStart(cert: Buffer): number {
  let match = cert.length
  for (let at = 0; at < cert.length;) {
    if (SIGNATURE_STARTS.some((s) => cert.subarray(at, at + s.length).toString('latin1') === s)) match = at
    const eol = cert.indexOf(0x0a, at)
    at = eol < 0 ? cert.length : eol + 1
  }
  return match
}

interface HeadContext {
  readonly capabilities: readonly string[]
  readonly format: ObjectFormat
  readonly shallow: readonly string[]
  readonly signed: boolean
}

function finishHead(r: Reader, commands: RefCommand[], start: number, ctx: HeadContext): ReceivePackHeadResult {
  const caps = new Set(ctx.capabilities.map((c) => c.split('=')[0]))
  const pushOptions: string[] = []
  let pos = start
  if (caps.has('push-options')) {
    for (;;) {
      const p = nextPacket(r, pos)
      if (!p.ok) return p.result
      pos = p.next
      if (p.value.kind === 'flush') break
      if (p.value.kind !== 'data') return fail('malformed', 'unexpected_special_packet')
      const option = chompLf(p.value.payload)
      if (/[\x00-\x1f\x7f]/.test(option.toString('latin1'))) return fail('malformed', 'bad_push_option')
      pushOptions.push(option.toString('utf8'))
      if (pushOptions.length > r.limits.maxPushOptions) return fail('malformed', 'too_many_push_options')
    }
  }
  return head({
    commands,
    capabilities: ctx.capabilities,
    objectFormat: ctx.format,
    pushOptions,
    shallow: ctx.shallow,
    signed: ctx.signed,
    sideBand: caps.has('side-band-64k') ? 'side-band-64k' : caps.has('side-band') ? 'side-band' : 'none',
    reportStatus: caps.has('report-status-v2')
      ? 'report-status-v2'
      : caps.has('report-status')
        ? 'report-status'
        : 'none',
    packOffset: pos,
    expectsPack: commands.some((c) => !isZeroOid(c.new)),
  })
}

function parseCommand(line: Buffer, format: ObjectFormat): RefCommand | { code: ReceivePackHeadError; detail: string } {
  const hexLen = format === 'sha1' ? 40 : 64
  if (line.length < hexLen * 2 + 3) return { code: 'malformed', detail: 'short_command' }
  if (line[hexLen] !== 0x20 || line[hexLen * 2 + 1] !== 0x20) return { code: 'malformed', detail: 'command_syntax' }
  const old = parseOidHex(line.subarray(0, hexLen), format)
  const neu = parseOidHex(line.subarray(hexLen + 1, hexLen * 2 + 1), format)
  if (old === null || neu === null) return { code: 'bad_oid', detail: 'command' }
  const ref = parseRefname(line.subarray(hexLen * 2 + 2))
  if (!ref.ok) return { code: 'bad_refname', detail: ref.problem }
  return { old, new: neu, ref: ref.name }
}

function nextPacket(r: Reader, pos: number): Step<PktLine> {
  const res = readPktLine(r.buf, pos)
  if (res.kind === 'invalid') return { ok: false, result: fail('malformed', `pkt_${res.detail}`) }
  if (res.kind === 'need_more') {
    if (r.buf.length >= r.limits.maxHeadBytes) return { ok: false, result: fail('head_too_large', 'bytes') }
    return { ok: false, result: r.final ? fail('truncated', 'head') : { kind: 'need_more' } }
  }
  if (res.next > r.limits.maxHeadBytes) return { ok: false, result: fail('head_too_large', 'bytes') }
  return { ok: true, value: res.packet, next: res.next }
}

/** Space-separated capabilities; null if any has a byte outside printable ASCII. */
function splitCapabilities(raw: Buffer): string[] | null {
  const text = raw.toString('latin1')
  if (/[^\x20-\x7e]/.test(text)) return null
  return text.split(' ').filter((c) => c !== '')
}

function objectFormatOf(capabilities: readonly string[]): ObjectFormat | ReceivePackHeadResult {
  const named = capabilities.filter((c) => c.startsWith('object-format=')).map((c) => c.slice(14))
  const distinct = new Set(named)
  if (distinct.size > 1) return fail('malformed', 'conflicting_object_formats')
  const format = named[0] ?? 'sha1'
  if (format !== 'sha1' && format !== 'sha256') return fail('unsupported_object_format', 'object_format')
  return format
}

function parseOids(raw: readonly Buffer[], format: ObjectFormat): string[] | null {
  const out: string[] = []
  for (const b of raw) {
    const oid = parseOidHex(b, format)
    if (oid === null) return null
    out.push(oid)
  }
  return out
}

function startsWith(buf: Buffer, prefix: string): boolean {
  return buf.length >= prefix.length && buf.subarray(0, prefix.length).toString('latin1') === prefix
}

function head(h: ReceivePackHead): ReceivePackHeadResult {
  return { kind: 'head', head: h }
}

function fail(code: ReceivePackHeadError, detail: string): ReceivePackHeadResult {
  return { kind: 'error', code, detail }
}
