// Lint rules that catch what review kept catching by hand: a promise nobody
// awaits or catches (an unhandled rejection ends the process), dead names, and
// a lower layer reaching up into a higher one (STYLE: net and tls know nothing
// of policy or config; policy does no I/O).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const layer = (files, patterns, message) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', { patterns: [{ group: patterns, message }] }],
  },
})

/** The layers above policy, net and tls (cli → app → runtime → proxy, admin, telemetry …). */
const UPPER = [
  '../proxy/*',
  '../admin/*',
  '../telemetry/*',
  '../limits/*',
  '../redis/*',
  '../runtime/*',
  '../cli/*',
  '../app.js',
]

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'src/admin/page/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // tap's t.test() returns a promise the harness itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-control-regex': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  // Lower layers know nothing of the layers above them (docs/architecture.md, "Layers").
  layer(
    ['src/policy/**/*.ts'],
    ['node:*', '../config/*', ...UPPER],
    'policy is a pure function of compiled facts: no I/O, no config loading, no upper layers',
  ),
  layer(
    ['src/net/**/*.ts'],
    ['../policy/*', '../config/*', ...UPPER],
    'net sits below policy and the proxy: it imports neither policy, config nor any upper layer',
  ),
  layer(
    ['src/tls/**/*.ts'],
    ['../config/*', ...UPPER],
    'tls sits below the proxy: it imports no config and no upper layer',
  ),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
)
