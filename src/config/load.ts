import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml'
import type { z } from 'zod'
import { ConfigError, PortcullisError, type ConfigIssue } from '../errors.js'
import { applyEnvOverrides } from './env.js'
import { compileConfig } from './compile.js'
import { ConfigSchema } from './schema.js'
import type { RuntimeConfig } from './types.js'

export const DEFAULT_CONFIG_PATH = 'config/portcullis.yaml'

/** --config, then PORTCULLIS_CONFIG, then config/portcullis.yaml (SPEC §6). */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? (env.PORTCULLIS_CONFIG || DEFAULT_CONFIG_PATH))
}

export type KeyPath = readonly (string | number)[]

/** Maps a key path to the line and column of its node in the YAML source. */
export interface Locator {
  readonly file: string
  at(path: KeyPath, message: string, key?: string): ConfigIssue
}

export function formatKeyPath(path: KeyPath): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`
  return out
}

function createLocator(file: string, doc: Document, lc: LineCounter): Locator {
  return {
    file,
    at(path, message, key) {
      let offset = 0
      // Walk down as far as the document goes: a default-filled key has no node, its nearest ancestor does.
      for (let depth = path.length; depth >= 0; depth--) {
        const node = doc.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined
        if (node?.range) {
          offset = node.range[0]
          if (key !== undefined && depth === path.length && isMap(node)) {
            const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key)
            const keyNode = pair?.key as { range?: [number, number, number] } | undefined
            if (keyNode?.range) offset = keyNode.range[0]
          }
          break
        }
      }
      const { line, col } = lc.linePos(offset)
      const fullPath = key === undefined ? path : [...path, key]
      return { file, line, col, path: formatKeyPath(fullPath), message }
    },
  }
}

function schemaIssues(error: z.ZodError, loc: Locator): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol')
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(loc.at(path, `unknown key '${key}'`, key))
    } else {
      out.push(loc.at(path, issue.message))
    }
  }
  return out
}

/** Parse → validate (strict schema) → environment overrides → compile → freeze. Pure apart from `env`. */
export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? { line: 1, col: 1 }
        return { file, line: pos.line, col: pos.col, path: '', message: `YAML syntax: ${e.message.split('\n')[0] ?? e.code}` }
      }),
    )
  }
  const loc = createLocator(file, doc, lc)
  const parsed = ConfigSchema.safeParse(doc.toJS() ?? {})
  if (!parsed.success) throw new ConfigError(schemaIssues(parsed.error, loc))
  const raw = applyEnvOverrides(parsed.data, env, file)
  return compileConfig(raw, loc)
}

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<RuntimeConfig> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new PortcullisError('PC_ERR_CONFIG_UNREADABLE', `cannot read config ${path}: ${code}`, { cause: err })
  }
  return parseConfigText(text, path, env)
}
