import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

/**
 * The module graph of src/ has no cycle of value imports (type-only imports vanish at run time): a
 * cycle is how a dependency bag ends up holding a flow, and how modules load half-initialised.
 */
const SRC = fileURLToPath(new URL('../../src/', import.meta.url))

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

const graph = new Map<string, string[]>()
for (const file of sources(SRC)) {
  const text = readFileSync(file, 'utf8')
  const deps: string[] = []
  // Prettier writes one import statement per line or per block ending in `} from '…'`.
  for (const m of text.matchAll(/^import (?!type )(?:[^'\n]|\n(?!import))*? from '(\.[^']+)'/gm))
    deps.push(normalize(join(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'))))
  graph.set(file, deps)
}

t.test('no module of src/ imports itself through others', async (t) => {
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const path: string[] = []
  const visit = (file: string): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push(
        path
          .slice(path.indexOf(file))
          .concat(file)
          .map((f) => relative(SRC, f))
          .join(' -> '),
      )
      return
    }
    state.set(file, 'open')
    path.push(file)
    for (const dep of graph.get(file) ?? []) visit(dep)
    path.pop()
    state.set(file, 'done')
  }
  for (const file of graph.keys()) visit(file)
  t.same(cycles, [])
  t.ok(graph.size > 50, `the graph was read (${graph.size} modules)`)
})
