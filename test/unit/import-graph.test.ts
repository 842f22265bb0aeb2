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

// Prettier writes one import statement per line or per block ending in `} from '…'`.
const VALUE_IMPORT = /^import (?!type )(?:[^'\n]|\n(?!import))*? from '(\.[^']+)'/gm
/** Every edge a reader follows: type-only imports and re-exports too. */
const ANY_IMPORT = /^(?:import|export) (?:type )?(?:[^'\n;]|\n(?!import|export))*? from '(\.[^']+)'/gm

function graphOf(pattern: RegExp): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8')
    const deps: string[] = []
    for (const m of text.matchAll(pattern))
      deps.push(normalize(join(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'))))
    graph.set(file, deps)
  }
  return graph
}

/** Every cycle found from each module (one per back edge), as `a -> b -> a` paths relative to src/. */
function cyclesOf(graph: Map<string, string[]>, from: (file: string) => boolean = () => true): string[] {
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
  for (const file of graph.keys()) if (from(file)) visit(file)
  return cycles
}

const graph = graphOf(VALUE_IMPORT)

t.test('no module of src/ imports itself through others', async (t) => {
  t.same(cyclesOf(graph), [])
  t.ok(graph.size > 50, `the graph was read (${graph.size} modules)`)
})

/**
 * Stricter where modules are read together: a telemetry, Redis or limits module does not reach
 * itself even through a type-only import or a re-export (a reader opening one file must not need
 * the one that imports it to understand it).
 */
const STRICT = ['telemetry', 'redis', 'limits']
t.test('telemetry, redis and limits modules form no cycle, counting type imports and re-exports', async (t) => {
  const all = graphOf(ANY_IMPORT)
  const strict = (file: string): boolean => STRICT.some((dir) => relative(SRC, file).startsWith(`${dir}/`))
  // Only cycles through a strict module count: other layers are held to the value-import rule above.
  t.same(
    cyclesOf(all, strict).filter((c) => c.split(' -> ').some((f) => strict(join(SRC, f)))),
    [],
  )
  t.ok([...all.keys()].filter(strict).length > 15, 'the strict modules were read')
})
