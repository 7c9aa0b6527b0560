// Vitest globalSetup: builds dist/ once (tsup) before any test file runs, so tests that run the
// built package or CLI in child processes always exercise the current sources.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const tsup = resolve(root, 'node_modules', 'tsup', 'dist', 'cli-default.js')
  execFileSync(process.execPath, [tsup], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
}
