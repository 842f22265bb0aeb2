/**
 * Loading: read → YAML parseDocument (positions kept via a LineCounter) →
 * schema → env overrides → compile → freeze (STYLE §7). Every problem is
 * reported with file, line, column and key path, YAML syntax errors too, and
 * all problems at once.
 */
import { readFile } from 'node:fs/promises'
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml'
import type { z } from 'zod'
import { ConfigError, PortcullisError, type ConfigIssue } from '../errors.js'
import { compileConfig } from './compile.js'
import { denyFilesOf, type DenyFiles } from './compile-packages.js'
import { applyEnvOverrides } from './env.js'
import { formatKeyPath, type ConfigSource, type KeyPath } from './issues.js'
import { configSchema } from './schema.js'
import type { RuntimeConfig } from './types.js'

export const DEFAULT_CONFIG_PATH = 'config/portcullis.yaml'

/** `--config`, then PORTCULLIS_CONFIG, then config/portcullis.yaml (SPEC §6). */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined && flag !== '') return flag
  const fromEnv = env.PORTCULLIS_CONFIG
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG_PATH
}

/** Where a file's text is read into a config: here, or off the event loop (config-reader.ts). */
export interface ConfigReader {
  /** The converted document and its deny files, once it is known to compile; rejects with its ConfigError. */
  read(text: string, file: string, env: NodeJS.ProcessEnv): Promise<CheckedYaml>
}

/** A document that compiled: the data and deny files to compile again where it is used. */
export interface CheckedYaml {
  readonly plain: unknown
  readonly denyFiles: DenyFiles
}

export async function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = {},
  opts: { readonly refuseEmpty?: boolean; readonly reader?: ConfigReader } = {},
): Promise<RuntimeConfig> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (cause) {
    throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `cannot read config file ${file}`, { cause })
  }
  const text = configText(bytes, file)
  // Parsed once (a large file's YAML is most of a reload's time). A reader off the event loop has
  // compiled it too, with every problem located; compiling it again here cannot fail, and would find
  // its positions by parsing the text again only if it did.
  const read: ConfigYaml & { readonly denyFiles?: DenyFiles } =
    opts.reader !== undefined && text.length > IN_THREAD_CHARS
      ? { ...(await opts.reader.read(text, file, env)), source: lazyYamlSource(text, file) }
      : readConfigYaml(text, file)
  // An empty file is the defaults (no agent, nothing allowed): fine to start from, but as an edit it is
  // far more likely a file caught between an editor's truncate and its write than a policy meant.
  if (opts.refuseEmpty === true && (read.plain ?? null) === null)
    throw new ConfigError([
      {
        file,
        line: 1,
        col: 1,
        path: '',
        message: 'the file is empty (no settings); the running policy is kept',
      },
    ])
  const config = configOf(read, env, read.denyFiles ?? (await denyFilesNamed(read.plain)))
  // So is a file that names no agent (written in two parts, caught between them): every request would
  // be refused and every open connection closed. To refuse everything, keep an agent with no groups.
  if (opts.refuseEmpty === true && config.policy.agents.size === 0)
    throw new ConfigError([
      {
        file,
        line: 1,
        col: 1,
        path: 'agents',
        message:
          'the file names no agents (caught mid-write?); the running policy is kept. To refuse every request, keep an agent with no groups',
      },
    ])
  return config
}

/**
 * Files up to this size are parsed where they are loaded (a hand-written policy: milliseconds); a
 * larger one goes to the reader, when there is one: YAML takes about a second per MiB here.
 */
const IN_THREAD_CHARS = 256 * 1024

/**
 * The reader's work, in the thread that runs it: parse, read the deny files, compile (every problem
 * located). Throws the ConfigError.
 */
export async function checkConfigText(text: string, file: string, env: NodeJS.ProcessEnv): Promise<CheckedYaml> {
  const read = readConfigYaml(text, file)
  const denyFiles = await denyFilesNamed(read.plain)
  configOf(read, env, denyFiles)
  return { plain: read.plain, denyFiles }
}

/** A policy file is hand-written: past this it is a mistake (a log, a dump), and parsing it would take seconds and gigabytes. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024

/**
 * The file's text: UTF-8, at most MAX_CONFIG_BYTES. Bytes that are not UTF-8 would be read as U+FFFD
 * and surface as a misleading error far away (or none, in a comment): they are the error, where they are.
 */
export function configText(bytes: Buffer, file: string): string {
  const issue = (line: number, col: number, message: string): ConfigError =>
    new ConfigError([{ file, line, col, path: '', message }])
  if (bytes.length > MAX_CONFIG_BYTES)
    throw issue(1, 1, `the file is ${bytes.length} bytes; a config is at most ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`)
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
    throw issue(1, 1, 'the file is UTF-16: save it as UTF-8')
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    const at = Math.max(0, firstBadUtf8Byte(bytes))
    const before = bytes.subarray(0, at).toString('utf8')
    const line = before.split('\n').length
    const col = before.length - before.lastIndexOf('\n')
    const hex = (bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, '0')
    throw issue(line, col, `byte 0x${hex} is not UTF-8: save the file as UTF-8`)
  }
}

/**
 * Where a UTF-8 sequence breaks, in one pass (RFC 3629's table: a bad lead byte, a missing
 * continuation, an overlong form, a surrogate, past U+10FFFF); -1 if none does.
 */
function firstBadUtf8Byte(b: Buffer): number {
  for (let i = 0; i < b.length;) {
    const c = b[i] as number
    const more =
      c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1
    if (more < 0) return i
    // The second byte's range narrows after E0 (no overlong), ED (no surrogate), F0 (no overlong), F4 (≤ U+10FFFF).
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf
    const second = b[i + 1] ?? 0
    if (more > 0 && (second < lo || second > hi)) return i
    for (let k = 2; k <= more; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i
    i += more + 1
  }
  return -1
}

/** The deny files a config names (packages.deny_file), read now: compiling is synchronous. */
export async function readDenyFiles(text: string): Promise<DenyFiles> {
  try {
    return await denyFilesNamed(parseDocument(text).toJS({ maxAliasCount: 100 }))
  } catch {
    // A document yaml cannot convert: none read here, and parseConfigText says why.
    return new Map()
  }
}

/**
 * The deny files named in a converted document. One that contains itself (an alias in its own
 * anchor's node) is refused before conversion (readConfigYaml), so the walk ends.
 */
async function denyFilesNamed(plain: unknown): Promise<DenyFiles> {
  let paths: string[]
  try {
    paths = [...denyFilesOf(plain)]
  } catch {
    return new Map()
  }
  const files = new Map<string, string | null>()
  for (const path of paths) files.set(path, await readFile(path, 'utf8').catch(() => null))
  return files
}

/** Pure: text in, frozen RuntimeConfig out, or a ConfigError listing every problem. */
export function parseConfigText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = {},
  denyFiles: DenyFiles = new Map(),
): RuntimeConfig {
  return configOf(readConfigYaml(text, file), env, denyFiles)
}

/** A config file's YAML, converted, with where each key path is written. */
interface ConfigYaml {
  readonly plain: unknown
  readonly source: ConfigSource
}

/** Text → the document as plain data, or a ConfigError for its syntax, unknown tags, aliases and `__proto__`. */
function readConfigYaml(text: string, file: string): ConfigYaml {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, logLevel: 'error' })
  const source = createYamlSource(file, doc, lineCounter)
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0])
        return { file, line: pos.line, col: pos.col, path: '', message: `YAML syntax: ${firstLine(e.message)}` }
      }),
    )
  }
  // A tag yaml cannot resolve (`!!js/function`, `!foo`) leaves the value a plain string, with a warning
  // on stderr only: what the author meant is not what would be read, so it is an error here.
  if (doc.warnings.length > 0) {
    throw new ConfigError(
      doc.warnings.map((e) => {
        const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0])
        return { file, line: pos.line, col: pos.col, path: '', message: `YAML: ${firstLine(e.message)}` }
      }),
    )
  }
  const protoIssues = prototypeKeys(doc, file, lineCounter)
  if (protoIssues.length > 0) throw new ConfigError(protoIssues)
  const aliasIssues = unresolvedAliases(doc, file, lineCounter)
  if (aliasIssues.length > 0) throw new ConfigError(aliasIssues)
  try {
    return { plain: doc.toJS({ maxAliasCount: 100 }), source }
  } catch (err) {
    // Alias expansion past maxAliasCount (a "billion laughs" document) is the one way left to fail here.
    const message = err instanceof Error ? firstLine(err.message) : String(err)
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: `YAML: ${message}` }])
  }
}

/** The converted document checked against the schema, with the environment's overrides, compiled. */
function configOf({ plain, source }: ConfigYaml, env: NodeJS.ProcessEnv, denyFiles: DenyFiles): RuntimeConfig {
  const parsed = configSchema.safeParse(plain ?? {})
  if (!parsed.success) throw new ConfigError(sortIssues(parsed.error.issues.flatMap((i) => toIssues(i, [], source))))
  const withEnv = applyEnvOverrides(parsed.data, env)
  if (!withEnv.ok) throw new ConfigError(withEnv.issues)
  return compileConfig(withEnv.config, source, denyFiles)
}

/**
 * `*name` is a YAML alias, so an unquoted `host: *.example.com` refers to an anchor `.example.com`
 * that does not exist. yaml reports that only when the document is converted, with no position:
 * find every alias without an anchor first and say where it is, and, for a host pattern, to quote it.
 * An alias inside its own anchor's node is refused too (yaml builds a cycle, which validation cannot walk).
 */
function unresolvedAliases(doc: Document, file: string, lineCounter: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  visit(doc, {
    Alias(_key, node, path) {
      const target = node.resolve(doc)
      const pos = lineCounter.linePos(node.range?.[0] ?? 0)
      if (target !== undefined) {
        // An alias inside the node it names (`x: &a [*a]`) makes a structure that contains itself.
        if (path.includes(target as (typeof path)[number]))
          issues.push({
            file,
            line: pos.line,
            col: pos.col,
            path: '',
            message: `YAML alias '*${node.source}' refers to a node that contains it: a configuration cannot contain itself`,
          })
        return
      }
      const pattern = node.source.startsWith('.')
      issues.push({
        file,
        line: pos.line,
        col: pos.col,
        path: '',
        message: pattern
          ? `'*${node.source}' is read by YAML as an alias; quote the pattern: "*${node.source}"`
          : `YAML alias '*${node.source}' has no anchor '&${node.source}' before it (quote the value if '*' is meant literally)`,
      })
    },
  })
  return issues
}

/**
 * `__proto__` as a key sets the prototype of the object YAML builds instead of adding an entry: a group,
 * preset or pin of that name would vanish without a word. No setting has that name; it is refused.
 */
function prototypeKeys(doc: Document, file: string, lineCounter: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  visit(doc, {
    Pair(_key, pair) {
      const key = pair.key as { value?: unknown; range?: [number, number, number] } | null
      if (key?.value !== '__proto__') return
      const pos = lineCounter.linePos(key.range?.[0] ?? 0)
      issues.push({ file, line: pos.line, col: pos.col, path: '', message: "'__proto__' cannot be a name here" })
    },
  })
  return issues
}

/** yaml's pretty message repeats the position and draws a caret; the issue already carries line and col. */
function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '')
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.col - b.col)
}

/** One zod issue → located ConfigIssues. Union failures are explained by their closest branch. */
function toIssues(issue: z.core.$ZodIssue, base: KeyPath, source: ConfigSource): ConfigIssue[] {
  const path: KeyPath = [...base, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))]
  const at = (p: KeyPath, message: string, atKey = false): ConfigIssue => ({
    file: source.file,
    ...source.locate(p, atKey),
    path: formatKeyPath(p),
    message,
  })
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => at([...path, k], `unknown key '${k}'`, true))
  }
  if (issue.code === 'invalid_union') {
    const closest = closestBranch(issue.errors)
    if (closest) return closest.flatMap((i) => toIssues(i, path, source))
    if (path.some((k) => k === 'allow' || k === 'deny' || k === 'presets'))
      return [at(path, 'expected a rule: a mapping with one of host, preset, github or git')]
    // Another union (a number or 'auto', …): each branch's own expectation.
    const expected = [
      ...new Set(issue.errors.flatMap((b) => b.slice(0, 1).map((i) => i.message.replace(/^Invalid input: /, '')))),
    ]
    return [at(path, expected.join(', or '))]
  }
  return [at(path, issue.message)]
}

/** The union branch with strictly the fewest issues (the one the author most likely meant), or null on a tie. */
function closestBranch(branches: readonly (readonly z.core.$ZodIssue[])[]): readonly z.core.$ZodIssue[] | null {
  const sorted = [...branches].sort((a, b) => a.length - b.length)
  const [first, second] = sorted
  if (!first || (second && second.length === first.length)) return null
  return first
}

/** A source that parses the text only when asked to locate something. */
function lazyYamlSource(text: string, file: string): ConfigSource {
  let parsed: ConfigSource | null = null
  return {
    file,
    locate(path, atKey) {
      if (parsed === null) {
        const lineCounter = new LineCounter()
        parsed = createYamlSource(file, parseDocument(text, { lineCounter }), lineCounter)
      }
      return parsed.locate(path, atKey)
    },
  }
}

/** Locate key paths in the parsed document (1-based line/col). */
function createYamlSource(file: string, doc: Document, lineCounter: LineCounter): ConfigSource {
  const pos = (offset: number): { line: number; col: number } => lineCounter.linePos(offset)
  return {
    file,
    locate(path, atKey = false) {
      if (atKey && path.length > 0) {
        const parent = doc.getIn(path.slice(0, -1), true)
        const last = path[path.length - 1]
        if (isMap(parent)) {
          const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(last))
          const range = isScalar(pair?.key) ? pair.key.range : undefined
          if (range) return pos(range[0])
        }
      }
      for (let n = path.length; n >= 0; n--) {
        const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)
        const range = (node as { range?: [number, number, number] } | null | undefined)?.range
        if (range) return pos(range[0])
      }
      return { line: 1, col: 1 }
    },
  }
}
