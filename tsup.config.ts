import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { index: 'lib/index.ts', cli: 'lib/cli/main.ts', internal: 'lib/internal.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  shims: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  sourcemap: false,
})
