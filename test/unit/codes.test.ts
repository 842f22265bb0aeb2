import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CODES } from '../../src/codes.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return sources(p)
    return p.endsWith('.ts') && !p.endsWith('/codes.ts') ? [p] : []
  })
}

const used = new Map<string, string>()
for (const file of sources(join(ROOT, 'src')))
  for (const m of readFileSync(file, 'utf8').matchAll(/'(PC_[A-Z0-9_]+)'/g)) used.set(m[1] as string, file)

t.test('every PC_* code in the source is declared in src/codes.ts', async (t) => {
  for (const [code, file] of used) t.ok(Object.hasOwn(CODES, code), `${code} (${file.slice(ROOT.length)})`)
})

t.test('every declared code is written somewhere (no dead codes)', async (t) => {
  for (const code of Object.keys(CODES)) t.ok(used.has(code), code)
})

t.test('docs/codes.md lists every code with its meaning', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/codes.md'), 'utf8')
  for (const [code, { level, meaning }] of Object.entries(CODES))
    t.ok(doc.includes(`| \`${code}\` | ${level} | ${meaning} |`), code)
})
