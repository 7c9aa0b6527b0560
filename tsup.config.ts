import { defineConfig } from 'tsup'

// Entry points published in the package, each with type declarations. A new public subpath is one
// line here plus its "exports" entry in package.json; declarations shared between public entries
// land in a chunk that package.json "files" ships with them (dist/*.d.ts, dist/*.d.cts).
const publicEntries = { index: 'lib/index.ts', postgres: 'lib/lease/postgres/index.ts' }

// Built for the CLI (shipped as JS only) and for tests and the chaos harness (not shipped). They get
// no declarations: a declaration chunk shared with them would be one the package does not ship.
const privateEntries = { cli: 'lib/cli/main.ts', internal: 'lib/internal.ts' }

export default defineConfig({
  entry: { ...publicEntries, ...privateEntries },
  format: ['esm', 'cjs'],
  dts: { entry: publicEntries },
  clean: true,
  shims: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  sourcemap: false,
})
