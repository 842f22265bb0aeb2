import {
  compilePackageRules,
  type Ecosystem,
  type PackageRules,
  type PackageRulesBlock,
} from '../../src/packages/rules.js'

/** A `packages:` block with nothing in it (no list, no min_age), and `over` on top. */
export function rulesBlock(over: Partial<PackageRulesBlock> = {}): PackageRulesBlock {
  return { deny: [], allow: null, denyFileLines: [], minAgeMs: null, minAgeExempt: [], ...over }
}

/** rulesBlock(over) compiled for `ecosystem`; a block that does not compile is a broken test, so it throws. */
export function packageRules(ecosystem: Ecosystem, over: Partial<PackageRulesBlock> = {}): PackageRules {
  const r = compilePackageRules(ecosystem, rulesBlock(over))
  if (!r.ok) throw new Error(`unexpected compile errors: ${JSON.stringify(r.errors)}`)
  return r.rules
}
